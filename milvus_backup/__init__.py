"""milvus-backup: back up and restore Milvus collections, compatible with zilliztech/milvus-backup.

The repository keeps the engine and its faces as top-level folders (`core/`, `tui/`, `cli/`, `api/`,
`sandbox/`); this package is the one name they are installed under. In a checkout its subpackages
are symbolic links to those folders; in the wheel they are ordinary folders.
"""
