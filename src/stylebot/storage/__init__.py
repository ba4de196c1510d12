"""Storage: SQLite records (aiosqlite) and the content-addressed blob store.

The front end owns the database; GPU workers only ever see blob keys.
"""
