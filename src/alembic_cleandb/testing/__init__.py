"""The pytest-only parts: the plugin (``pytest11`` entry point ``cleandb``), worker databases
for pytest-xdist, the ``--cleandb-report`` summary and ``cleandb_migrate``."""
