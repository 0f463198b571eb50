"""``manage.py runserver`` whose first Milvus write kills the process: a worker dying mid-outbox.

    python tests/api/fault_server.py before|after 127.0.0.1:PORT

``before``: the process exits where it would write vectors (the database change is committed,
the collection never hears of it). ``after``: it writes them, then exits before the cursor moves.
``os._exit`` runs no cleanup, as a killed worker does not.
"""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from inference.vector_index import milvus  # noqa: E402

mode, address = sys.argv[1], sys.argv[2]
real_upsert = milvus.MilvusIndex.upsert


def dying_upsert(self, ids, vectors, partitions=None):
    if mode == "after":
        real_upsert(self, ids, vectors, partitions)
    print(f"fault_server: exiting {mode} the vector write of {len(ids)} voiceprints", flush=True)
    os._exit(17)


milvus.MilvusIndex.upsert = dying_upsert

if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    execute_from_command_line(["manage.py", "runserver", "--noreload", address])
