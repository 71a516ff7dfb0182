"""Tools for trying and testing the product, not part of the engine: a real Milvus and S3 store on
loopback (`servers`) and the demo collections (`demo`). Reached as `milvus-backup sandbox ...`."""
