-- push
SELECT COALESCE(MAX(depth), 0) FROM cleandb_layers WHERE tid = 0

-- push
INSERT INTO cleandb_layers (depth, tid) VALUES (%(p0)s, 0)

-- push
SELECT id, name FROM cleandb_tables WHERE baseline_rows > 0 ORDER BY id

-- push
SELECT CONCAT_WS(',', IF(EXISTS (SELECT 1 FROM `we``ird`), NULL, %(p0)s))

-- push
SELECT id, name, baseline_rows FROM cleandb_tables WHERE id IN (SELECT tid FROM cleandb_dirty) ORDER BY id

-- push
INSERT INTO cleandb_layers (depth, tid, baseline_rows, counter, reset_sql, restore_sql, counter_sql, update_sql, reset_mode) SELECT %(p0)s, id, baseline_rows, counter, reset_sql, restore_sql, counter_sql, update_sql, reset_mode FROM cleandb_tables WHERE id IN (%(p1)s, %(p2)s)

-- push
SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 'cleandb\_b%\_%'

-- push
SELECT TABLE_NAME, AUTO_INCREMENT, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (%(p0)s, %(p1)s)

-- push
SELECT TABLE_NAME, COLUMN_NAME, EXTRA, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (%(p0)s, %(p1)s) ORDER BY TABLE_NAME, ORDINAL_POSITION

-- push
SELECT DISTINCT EVENT_OBJECT_TABLE, EVENT_MANIPULATION FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = DATABASE() AND LEFT(TRIGGER_NAME, 8) <> 'cleandb_' AND EVENT_OBJECT_TABLE IN (%(p0)s, %(p1)s)

-- push
SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = DATABASE() AND CONSTRAINT_NAME = 'PRIMARY' AND TABLE_NAME IN (%(p0)s, %(p1)s) ORDER BY TABLE_NAME, ORDINAL_POSITION

-- push
SELECT @@auto_increment_increment, @@auto_increment_offset

-- push
SELECT COUNT(*) FROM `plain`

-- push
SELECT MAX(`id`) FROM `plain`

-- push
SELECT COUNT(*) FROM `we``ird`

-- push
SELECT MAX(`id`) FROM `we``ird`

-- push
CREATE TABLE `cleandb_b1_1` AS SELECT `id`, `v` FROM `plain`

-- push
UPDATE cleandb_tables SET baseline_rows = %(p0)s, counter = %(p1)s, reset_sql = %(p2)s, restore_sql = %(p3)s, counter_sql = %(p4)s, update_sql = %(p5)s WHERE id = %(p6)s

-- push
CREATE TABLE `cleandb_b2_1` AS SELECT `id`, `v` FROM `we``ird`

-- push
UPDATE cleandb_tables SET baseline_rows = %(p0)s, counter = %(p1)s, reset_sql = %(p2)s, restore_sql = %(p3)s, counter_sql = %(p4)s, update_sql = %(p5)s WHERE id = %(p6)s

-- push
DELETE FROM cleandb_dirty WHERE tid IN (%(p0)s, %(p1)s)

-- push
SELECT 1 FROM cleandb_tables WHERE check_sql IS NOT NULL AND id IN (%(p0)s, %(p1)s) LIMIT 1

-- push
SELECT 1 FROM cleandb_cascades LIMIT 1

-- push
SELECT 1 FROM cleandb_tables WHERE check_sql IS NOT NULL LIMIT 1

-- push
SELECT id, name FROM cleandb_tables WHERE baseline_rows > 0 ORDER BY id

-- push
UPDATE cleandb_tables SET reset_mode = 0 WHERE id IN (%(p0)s, %(p1)s)

-- push
SELECT excluded FROM cleandb_config

-- push
SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'SEQUENCE' ORDER BY TABLE_NAME

-- push
SELECT name, position FROM cleandb_sequences

-- push
SELECT id, name, counter FROM cleandb_tables WHERE baseline_rows = 0 AND counter > 1 ORDER BY id

-- push
DROP PROCEDURE IF EXISTS cleandb_truncate

-- push
DROP PROCEDURE IF EXISTS cleandb_reset

-- push
SET @cleandb_mode = @@SESSION.sql_mode

-- push
SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'NO_AUTO_VALUE_ON_ZERO')

-- push
CREATE PROCEDURE cleandb_truncate() ... (see mariadb.sql)

-- push
SET SESSION sql_mode = @cleandb_mode

-- push
CREATE PROCEDURE cleandb_truncate() ... (see mariadb.sql)

-- pop
SELECT COALESCE(MAX(depth), 0) FROM cleandb_layers WHERE tid = 0

-- pop
SELECT tid, baseline_rows FROM cleandb_layers WHERE depth = %(p0)s AND tid > 0

-- pop
SELECT id, baseline_rows FROM cleandb_tables WHERE id IN (%(p0)s, %(p1)s)

-- pop
START TRANSACTION

-- pop
UPDATE cleandb_tables SET baseline_rows = (SELECT l.baseline_rows FROM cleandb_layers l WHERE l.depth = %(p0)s AND l.tid = cleandb_tables.id), counter = (SELECT l.counter FROM cleandb_layers l WHERE l.depth = %(p1)s AND l.tid = cleandb_tables.id), reset_sql = (SELECT l.reset_sql FROM cleandb_layers l WHERE l.depth = %(p2)s AND l.tid = cleandb_tables.id), restore_sql = (SELECT l.restore_sql FROM cleandb_layers l WHERE l.depth = %(p3)s AND l.tid = cleandb_tables.id), counter_sql = (SELECT l.counter_sql FROM cleandb_layers l WHERE l.depth = %(p4)s AND l.tid = cleandb_tables.id), update_sql = (SELECT l.update_sql FROM cleandb_layers l WHERE l.depth = %(p5)s AND l.tid = cleandb_tables.id), reset_mode = (SELECT l.reset_mode FROM cleandb_layers l WHERE l.depth = %(p6)s AND l.tid = cleandb_tables.id) WHERE id IN (SELECT tid FROM cleandb_layers WHERE depth = %(p7)s AND tid > 0)

-- pop
INSERT IGNORE INTO cleandb_dirty (tid, kind) SELECT tid, 'i' FROM cleandb_layers WHERE depth = %(p0)s AND tid > 0

-- pop
DELETE FROM cleandb_layers WHERE depth = %(p0)s

-- pop
COMMIT

-- pop
SELECT 1 FROM cleandb_tables WHERE check_sql IS NOT NULL AND id IN (%(p0)s, %(p1)s) LIMIT 1

-- pop
SELECT 1 FROM cleandb_cascades LIMIT 1

-- pop
SELECT 1 FROM cleandb_tables WHERE check_sql IS NOT NULL LIMIT 1

-- pop
SELECT id, name FROM cleandb_tables WHERE baseline_rows > 0 ORDER BY id

-- pop
SELECT excluded FROM cleandb_config

-- pop
SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'SEQUENCE' ORDER BY TABLE_NAME

-- pop
SELECT name, position FROM cleandb_sequences

-- pop
SELECT id, name, counter FROM cleandb_tables WHERE baseline_rows = 0 AND counter > 1 ORDER BY id

-- pop
DROP PROCEDURE IF EXISTS cleandb_truncate

-- pop
DROP PROCEDURE IF EXISTS cleandb_reset

-- pop
SET @cleandb_mode = @@SESSION.sql_mode

-- pop
SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'NO_AUTO_VALUE_ON_ZERO')

-- pop
CREATE PROCEDURE cleandb_truncate() ... (see mariadb.sql)

-- pop
SET SESSION sql_mode = @cleandb_mode

-- pop
CREATE PROCEDURE cleandb_truncate() ... (see mariadb.sql)

-- pop
SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 'cleandb\_b%\_%'

-- pop
DROP TABLE `cleandb_b1_1`

-- pop
DROP TABLE `cleandb_b2_1`

