"""Feeds the fleet: the SQS listener (`rudolph listen`) and, later, the backfill feeder."""
