"""Runs in the separate petastorm environment (pyarrow 14, numpy < 2, no Ray): reads every train row of a shard
directory with petastorm.make_batch_reader, sharded like a 2-rank data-parallel job, and prints the row count.

Petastorm turns each batch into NumPy arrays of equal-length rows, so the variable-length sequence columns are
left-padded to the window length in a TransformSpec, as a Petastorm-fed sequence trainer would do.
The synchronous "dummy" reader pool: petastorm 0.13.1's thread pool can end an epoch early under CPU load (its
get_results sees every worker done, then the ventilator complete, with the last row group ventilated in between;
seen here as 307 of 658 and 0 of 492 rows while the machine was busy), a reader race, not a property of the shards.
Usage: python petastorm_read.py file:///path/to/train WINDOW_LEN SHARD_COUNT
"""
import sys

import numpy as np
from petastorm import make_batch_reader
from petastorm.transform import TransformSpec

SEQ = ("items", "event_types", "ts", "dt")


def main() -> int:
    url, width, shards = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

    def pad(df):
        for col in [c for c in SEQ if c in df.columns]:
            df[col] = [np.pad(np.asarray(x, np.int64), (width - len(x), 0)) for x in df[col]]
        return df

    spec = TransformSpec(pad, edit_fields=[(c, np.int64, (width,), False) for c in SEQ])
    total, padded_ok = 0, True
    for shard in range(shards):
        with make_batch_reader(url, cur_shard=shard, shard_count=shards, num_epochs=1, reader_pool_type="dummy",
                               transform_spec=spec) as reader:
            for batch in reader:
                total += len(batch.user_id)
                padded_ok &= batch.items.shape[1] == width and bool((batch.items[:, -1] > 0).all())
    print(f"rows={total} padded_ok={padded_ok}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
