"""`rudolph backfill s3://bucket[/prefix]`: feed objects already in a bucket into the pipeline.

The listing (or an S3 Inventory report, `inventory`) is streamed page by page, never held
whole. Per page, the table is asked in BatchGetItem chunks of 100 what it holds for each image:
images analysed at the same etag are skipped (re-run with `force`; `missing` re-runs one
feature where it is absent or failed), pending ones are in flight. The rest are published in
batches of up to `batch` refs, one light `rudolph.backfill_batch` task each (aggregate queue), which
a worker expands: door check, conditional claim, pipeline (rudolph/batches.py). Before each
batch the Celery queues' depth plus the refs of batches not expanded yet is held under
`max_queued` (backpressure); `rate` spaces the objects. After each batch the last key sent is
written atomically to the checkpoint (with the run id), from which `resume` restarts: a crash
re-sends at most the batches after it, and their claims refuse what was sent already.

The package, one job a module: listing.py (the listing or inventory, and filters),
decisions.py (skip, new or rerun), checkpoint.py, pacing.py, options.py (Options, Report),
run.py (`Backfill`, which ties them together).
"""

from producer.backfill.checkpoint import (
    default_checkpoint,
    estimate_path,
    read_checkpoint,
    write_checkpoint,
)
from producer.backfill.decisions import Work, decide
from producer.backfill.listing import event_time, listed_ref, parse_s3_url
from producer.backfill.options import Options, Report
from producer.backfill.run import Backfill

__all__ = [
    "Backfill",
    "Options",
    "Report",
    "Work",
    "decide",
    "default_checkpoint",
    "estimate_path",
    "event_time",
    "listed_ref",
    "parse_s3_url",
    "read_checkpoint",
    "write_checkpoint",
]
