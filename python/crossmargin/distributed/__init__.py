"""Scale-out on Dask: partitioned books with a verified manifest, sharded evaluate and
stress with exactly merged summaries, and the cascade as bulk-synchronous rounds
(docs/SCALING.md)."""

from crossmargin.distributed.sharded import (
    FORMAT_VERSION,
    MANIFEST,
    RATIO_BINS,
    ExactSum,
    PartitionWriter,
    ShardActor,
    ShardedMargin,
    UniverseSpec,
    cascade,
    connect,
    evaluate,
    is_partitioned,
    merge_summaries,
    partial_summary,
    partition_of,
    partitions,
    read_partition,
    read_partitioned,
    stress,
    summarize,
    write_partitioned,
)
from crossmargin.table import adopt_protocol

# The result protocol (crossmargin.table): main table "top" (the riskiest accounts, account
# and margin_ratio), also "histogram" (accounts per margin-ratio bin).
adopt_protocol(ShardedMargin, ("top", "histogram"))

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "RATIO_BINS",
    "ExactSum",
    "PartitionWriter",
    "ShardActor",
    "ShardedMargin",
    "UniverseSpec",
    "cascade",
    "connect",
    "evaluate",
    "is_partitioned",
    "merge_summaries",
    "partial_summary",
    "partition_of",
    "partitions",
    "read_partition",
    "read_partitioned",
    "stress",
    "summarize",
    "write_partitioned",
]
