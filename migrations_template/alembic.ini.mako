# Alembic configuration, with alembic-cleandb's test-only branch.
#
#   alembic upgrade head                      production and development: never sees cleandb
#   alembic -n cleandb upgrade heads          test databases: migrations + dirty tracking
#
# The database URL comes from DATABASE_URL when set, else from sqlalchemy.url.

[alembic]
script_location = ${script_location}
prepend_sys_path = .
path_separator = space
sqlalchemy.url = driver://user:pass@localhost/dbname

# The same project, plus the packaged cleandb branch. Keep path_separator = space here:
# with "os" the ":" in alembic_cleandb:versions would split the location.
[cleandb]
script_location = ${script_location}
prepend_sys_path = .
path_separator = space
version_locations = ${script_location}/versions alembic_cleandb:versions
sqlalchemy.url = driver://user:pass@localhost/dbname_test

[post_write_hooks]

[loggers]
keys = root,sqlalchemy,alembic

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console
qualname =

[logger_sqlalchemy]
level = WARNING
handlers =
qualname = sqlalchemy.engine

[logger_alembic]
level = INFO
handlers =
qualname = alembic

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
datefmt = %H:%M:%S
