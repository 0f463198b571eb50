"""1:N search: where "who is speaking?" finds its candidates.

The search index is derived state: the database's voiceprint rows are the truth, and every
index is rebuilt from them, never the other way round. One vocabulary:

* **search index** (:mod:`.index`): what a request searches. Per process (FAISS, flat or IVF,
  rebuilt after start and kept in step through the change log) or, past one machine, a thin view
  of the shared tier;
* **change log and rows** (:mod:`.rows`): what every index derives from (the voiceprint change log
  and the readable, complete voiceprint rows);
* **shared tier** (:mod:`.shared_tier`): one Milvus collection per model version for every worker
  on every machine, fed from the change log as its outbox;
* **checks** (:mod:`.checks`): the shared tier compared with the rows, and rebuilt
  (``manage.py rebuild_index``).

The engine side of search (the ``VectorIndex`` protocol and its flat, IVF and Milvus
implementations, keyed by UUID) is :mod:`inference.vector_index`.
"""
