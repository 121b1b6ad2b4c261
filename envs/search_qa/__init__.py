"""Search QA: offline multi-hop corpus, BM25 retrieval, Search-R1 tag protocol."""
