"""rudolph: turn the images in S3 buckets into searchable facts.

The public surface is the `rudolph` command and the record model (`rudolph.record.Record`);
everything else is the machinery behind them.
"""

from rudolph.record import Record

__all__ = ["Record"]
