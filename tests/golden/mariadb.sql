-- bookkeeping
CREATE TABLE IF NOT EXISTS cleandb_config (schema_version INT NOT NULL, database_name VARCHAR(64) NOT NULL, excluded TEXT NOT NULL, tickets BIGINT NOT NULL DEFAULT 1, drifted BOOLEAN NOT NULL DEFAULT FALSE) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin

-- bookkeeping
CREATE TABLE IF NOT EXISTS cleandb_tables (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(64) NOT NULL UNIQUE, baseline_rows BIGINT NOT NULL DEFAULT 0, counter BIGINT NULL, reset_sql TEXT NULL, restore_sql TEXT NULL, counter_sql TEXT NULL, update_sql TEXT NULL, check_sql TEXT NULL, check_names TEXT NULL, app_triggers TINYINT NOT NULL DEFAULT 0, reset_mode TINYINT NOT NULL DEFAULT 0) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin

-- bookkeeping
CREATE TABLE IF NOT EXISTS cleandb_dirty (tid INT NOT NULL, kind CHAR(1) NOT NULL, conn BIGINT UNSIGNED NOT NULL DEFAULT 0, PRIMARY KEY (tid, kind, conn)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin

-- bookkeeping
CREATE TABLE IF NOT EXISTS cleandb_tickets (id BIGINT AUTO_INCREMENT PRIMARY KEY) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin

-- bookkeeping
CREATE TABLE IF NOT EXISTS cleandb_cascades (parent INT NOT NULL, child INT NOT NULL, PRIMARY KEY (parent, child)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin

-- bookkeeping
CREATE TABLE IF NOT EXISTS cleandb_layers (depth INT NOT NULL, tid INT NOT NULL, baseline_rows BIGINT NOT NULL DEFAULT 0, counter BIGINT NULL, reset_sql TEXT NULL, restore_sql TEXT NULL, counter_sql TEXT NULL, update_sql TEXT NULL, reset_mode TINYINT NOT NULL DEFAULT 0, PRIMARY KEY (depth, tid)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin

-- bookkeeping
CREATE TABLE IF NOT EXISTS cleandb_dirty_nt (tid INT NOT NULL, kind CHAR(1) NOT NULL, conn BIGINT UNSIGNED NOT NULL DEFAULT 0, PRIMARY KEY (tid, kind, conn)) ENGINE=MyISAM DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin

-- bookkeeping
CREATE SEQUENCE IF NOT EXISTS cleandb_ticket_seq NOCACHE

-- bookkeeping
CREATE TABLE IF NOT EXISTS cleandb_sequences (name VARCHAR(64) PRIMARY KEY, position BIGINT NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin

-- trigger i
CREATE TRIGGER cleandb_9_i BEFORE INSERT ON `we``ird` FOR EACH ROW BEGIN DECLARE EXIT HANDLER FOR 1062 BEGIN END; INSERT INTO cleandb_dirty (tid, kind, conn) VALUES (9, 'i', CONNECTION_ID()); INSERT INTO cleandb_tickets (id) VALUES (NEXT VALUE FOR cleandb_ticket_seq); END

-- trigger u
CREATE TRIGGER cleandb_9_u BEFORE UPDATE ON `we``ird` FOR EACH ROW BEGIN DECLARE EXIT HANDLER FOR 1062 BEGIN END; INSERT INTO cleandb_dirty (tid, kind, conn) VALUES (9, 'u', CONNECTION_ID()); INSERT INTO cleandb_tickets (id) VALUES (NEXT VALUE FOR cleandb_ticket_seq); END

-- trigger d
CREATE TRIGGER cleandb_9_d AFTER DELETE ON `we``ird` FOR EACH ROW BEGIN DECLARE EXIT HANDLER FOR 1062 BEGIN END; INSERT INTO cleandb_dirty (tid, kind, conn) VALUES (9, 'd', CONNECTION_ID()); END

-- sync, seeded ['`lookup`', '`we``ird`'], fresh=True
DROP PROCEDURE IF EXISTS cleandb_truncate

-- sync, seeded ['`lookup`', '`we``ird`'], fresh=True
DROP PROCEDURE IF EXISTS cleandb_reset

-- sync, seeded ['`lookup`', '`we``ird`'], fresh=True
SET @cleandb_mode = @@SESSION.sql_mode

-- sync, seeded ['`lookup`', '`we``ird`'], fresh=True
SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'NO_AUTO_VALUE_ON_ZERO')

-- sync, seeded ['`lookup`', '`we``ird`'], fresh=True
CREATE PROCEDURE cleandb_reset(IN p_restart BOOLEAN)
proc: BEGIN
DECLARE v_id INT;
DECLARE v_name VARCHAR(64) CHARACTER SET utf8mb4;
DECLARE v_reset, v_restore, v_counter, v_empty, v_missing, v_ddl, v_nowait TEXT CHARACTER SET utf8mb4;
DECLARE v_update, v_fupdate TEXT CHARACTER SET utf8mb4;
DECLARE v_finished, v_later, v_freset, v_frestore TEXT CHARACTER SET utf8mb4;
DECLARE v_fname VARCHAR(64) CHARACTER SET utf8mb4;
DECLARE v_message VARCHAR(128) CHARACTER SET utf8mb4;
DECLARE v_inserted, v_updated, v_written, v_done, v_gone, v_here INT DEFAULT 0;
DECLARE v_last, v_busy, v_ran, v_seeded, v_fid, v_swap, v_drift INT DEFAULT 0;
DECLARE v_count, v_marks, v_tries, v_pass, v_again, v_mode, v_stuck INT DEFAULT 0;
DECLARE v_refused, v_why, v_seqs TEXT CHARACTER SET utf8mb4;
DECLARE v_next, v_seen, v_kept, v_base, v_now BIGINT DEFAULT 0;
DECLARE cur CURSOR FOR
SELECT tid, MAX(kind IN ('i', 'a')), MAX(kind = 'u'), MAX(kind <> 'a')
FROM cleandb_dirty GROUP BY tid ORDER BY tid;
DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = 1;
DECLARE EXIT HANDLER FOR SQLEXCEPTION
BEGIN
ROLLBACK;
IF @cleandb_fk IS NOT NULL THEN
SET SESSION foreign_key_checks = @cleandb_fk;
SET @cleandb_fk = NULL;
END IF;
RESIGNAL;
END;
SET @cleandb_table = NULL;
IF (SELECT COUNT(*) FROM cleandb_dirty_nt) > 0 THEN
INSERT IGNORE INTO cleandb_dirty (tid, kind) SELECT tid, kind FROM cleandb_dirty_nt;
COMMIT;
DELETE FROM cleandb_dirty_nt;
END IF;
SELECT s.next_ticket, c.tickets, c.drifted AND p_restart,
EXISTS (SELECT 1 FROM cleandb_dirty), c.database_name = DATABASE(), CONCAT_WS(',', IF(EXISTS (SELECT 1 FROM `lookup`), NULL, 3), IF(EXISTS (SELECT 1 FROM `we``ird`), NULL, 9)),
''
INTO v_next, v_seen, v_drift, v_marks, v_here, v_empty, v_seqs
FROM cleandb_config c, (SELECT next_not_cached_value AS next_ticket FROM cleandb_ticket_seq) s LIMIT 1;
IF v_done THEN
SELECT EXISTS (SELECT 1 FROM cleandb_dirty) INTO v_marks;
END IF;
IF NOT p_restart THEN
SET v_seqs = '';
END IF;
IF v_next = v_seen AND NOT v_marks AND NOT v_done AND NOT v_drift
AND (v_empty IS NULL OR v_empty = '') AND (v_seqs IS NULL OR v_seqs = '') THEN
SELECT 0;
LEAVE proc;
END IF;
IF v_empty <> '' THEN
INSERT IGNORE INTO cleandb_dirty (tid, kind) SELECT id, 'i' FROM cleandb_tables
WHERE FIND_IN_SET(id, v_empty) > 0;
SET v_marks = 1;
END IF;
IF p_restart AND (v_next <> v_seen OR v_drift) THEN
SELECT COUNT(*) INTO v_kept FROM cleandb_tickets WHERE id >= v_seen AND id < v_next;
IF v_kept <> v_next - v_seen OR v_drift THEN
INSERT IGNORE INTO cleandb_dirty (tid, kind)
SELECT t.id, 'a' FROM cleandb_tables t JOIN information_schema.TABLES s
ON s.TABLE_SCHEMA = DATABASE() AND s.TABLE_NAME = t.name
WHERE t.counter IS NOT NULL AND s.AUTO_INCREMENT <> t.counter;
SELECT COUNT(*) INTO v_marks FROM cleandb_dirty;
END IF;
END IF;
IF v_marks THEN
IF NOT v_here THEN
SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'alembic-cleandb: tracking here was installed in another database; refusing to reset. Adopt a copied test database with alembic_cleandb.adopt(url).';
END IF;
SET @cleandb_fk = @@SESSION.foreign_key_checks;
SET SESSION foreign_key_checks = 0;
passes: LOOP
SET v_done = 0;
OPEN cur;
tables: LOOP
FETCH cur INTO v_id, v_inserted, v_updated, v_written;
SET v_last = v_done, v_busy = 0, v_ran = 0, v_gone = 0, v_stuck = 0;
IF NOT v_last THEN
SELECT name, reset_sql, restore_sql, counter_sql, counter, update_sql, reset_mode
INTO v_name, v_reset, v_restore, v_counter, v_base, v_update, v_mode
FROM cleandb_tables WHERE id = v_id;
IF v_done THEN
SET v_done = 0;
DELETE FROM cleandb_dirty WHERE tid = v_id;
ITERATE tables;
END IF;
SET @cleandb_table = v_name;
IF NOT p_restart AND v_mode <> 1 THEN
SET v_later = CONCAT_WS(',', v_later, v_id), v_count = v_count + v_written;
ITERATE tables;
END IF;
IF v_restore IS NULL THEN
SET v_seeded = 0, v_ddl = v_reset;
SET v_nowait = CONCAT(v_ddl, ' NOWAIT');
ELSEIF v_mode = 1 THEN
SET v_seeded = 1,
v_ddl = CONCAT('TRUNCATE TABLE `', REPLACE(v_name, '`', '``'), '`');
SET v_nowait = CONCAT(v_ddl, ' NOWAIT');
ELSE
IF v_base IS NOT NULL AND v_updated AND NOT v_inserted THEN
SELECT AUTO_INCREMENT INTO v_now FROM information_schema.TABLES
WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = v_name;
SET v_inserted = v_now <> v_base, v_done = 0;
END IF;
IF v_base IS NULL OR NOT v_inserted THEN
SET v_later = CONCAT_WS(',', v_later, v_id), v_count = v_count + v_written;
ITERATE tables;
END IF;
IF v_update IS NULL AND v_mode <> 2 THEN
SET v_seeded = 1,
v_ddl = CONCAT('TRUNCATE TABLE `', REPLACE(v_name, '`', '``'), '`');
SET v_nowait = CONCAT(v_ddl, ' NOWAIT');
ELSE
START TRANSACTION;
BEGIN
DECLARE EXIT HANDLER FOR 1146 SET v_gone = 1;
SET @cleandb_sql = v_reset, v_swap = 0;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
BEGIN
DECLARE EXIT HANDLER FOR 1062 SET v_swap = 1;
SET @cleandb_sql = v_restore;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
IF v_update IS NOT NULL THEN
SET @cleandb_sql = v_update;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
END IF;
END;
IF v_swap THEN
SET @cleandb_sql = CONCAT('DELETE FROM `', REPLACE(v_name, '`', '``'), '`');
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
SET @cleandb_sql = v_restore;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
IF v_update IS NOT NULL THEN
SET @cleandb_sql = v_update;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
END IF;
END IF;
DEALLOCATE PREPARE cleandb_stmt;
END;
SET v_seeded = 0, v_ddl = v_counter, v_counter = NULL;
SET v_nowait = CONCAT('ALTER TABLE `', REPLACE(v_name, '`', '``'), '` NOWAIT AUTO_INCREMENT = ', v_base);
END IF;
END IF;
IF v_later IS NOT NULL OR v_finished IS NOT NULL THEN
SET @cleandb_sql = v_nowait, v_tries = 0;
PREPARE cleandb_stmt FROM @cleandb_sql;
REPEAT
SET v_busy = 0, v_tries = v_tries + 1;
BEGIN
DECLARE EXIT HANDLER FOR 1205 SET v_busy = 1;
DECLARE EXIT HANDLER FOR 1146 SET v_gone = 1;
EXECUTE cleandb_stmt;
SET v_ran = 1;
END;
UNTIL NOT v_busy OR v_tries >= 4 END REPEAT;
END IF;
END IF;
IF v_last OR v_busy THEN
START TRANSACTION;
WHILE v_later IS NOT NULL DO
SET v_fid = SUBSTRING_INDEX(v_later, ',', 1);
SET v_later = NULLIF(SUBSTRING(v_later, LENGTH(v_fid) + 2), '');
SELECT name, reset_sql, restore_sql, update_sql
INTO v_fname, v_freset, v_frestore, v_fupdate FROM cleandb_tables WHERE id = v_fid;
SET @cleandb_table = v_fname, v_gone = 0;
IF v_frestore IS NULL THEN
BEGIN
DECLARE EXIT HANDLER FOR 1146 SET v_gone = 1;
SET @cleandb_sql = CONCAT('DELETE FROM `', REPLACE(v_fname, '`', '``'), '`');
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
DEALLOCATE PREPARE cleandb_stmt;
END;
ELSE
BEGIN
DECLARE EXIT HANDLER FOR 1146 SET v_gone = 1;
SET @cleandb_sql = v_freset, v_swap = 0;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
BEGIN
DECLARE EXIT HANDLER FOR 1062 SET v_swap = 1;
SET @cleandb_sql = v_frestore;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
IF v_fupdate IS NOT NULL THEN
SET @cleandb_sql = v_fupdate;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
END IF;
END;
IF v_swap THEN
SET @cleandb_sql = CONCAT('DELETE FROM `', REPLACE(v_fname, '`', '``'), '`');
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
SET @cleandb_sql = v_frestore;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
IF v_fupdate IS NOT NULL THEN
SET @cleandb_sql = v_fupdate;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
END IF;
END IF;
DEALLOCATE PREPARE cleandb_stmt;
END;
END IF;
IF v_gone THEN
SET v_missing = CONCAT_WS(', ', v_missing, CONCAT('`', REPLACE(v_fname, '`', '``'), '`'));
ELSE
DELETE FROM cleandb_dirty WHERE tid = v_fid;
END IF;
END WHILE;
IF v_finished IS NOT NULL THEN
SET @cleandb_sql = CONCAT('DELETE FROM cleandb_dirty WHERE tid IN (', v_finished, ') AND conn <> CONNECTION_ID()');
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
DEALLOCATE PREPARE cleandb_stmt;
SET v_finished = NULL;
END IF;
IF v_last THEN
LEAVE tables;
END IF;
SET @cleandb_table = v_name, v_gone = 0;
END IF;
IF NOT v_gone THEN
BEGIN
DECLARE EXIT HANDLER FOR 1146 SET v_gone = 1;
IF NOT v_ran THEN
SET @cleandb_sql = v_ddl;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
END IF;
IF v_counter IS NOT NULL THEN
IF v_seeded AND v_mode <> 1 THEN
SET @cleandb_sql = v_restore;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
END IF;
SET @cleandb_sql = v_counter;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
END IF;
DEALLOCATE PREPARE cleandb_stmt;
END;
END IF;
IF v_seeded AND v_mode = 1 AND NOT v_gone THEN
BEGIN
DECLARE EXIT HANDLER FOR SQLEXCEPTION
BEGIN
GET DIAGNOSTICS CONDITION 1 v_why = MESSAGE_TEXT;
SET v_stuck = 1;
END;
SET @cleandb_sql = v_restore;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
IF v_update IS NOT NULL THEN
SET @cleandb_sql = v_update;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
END IF;
END;
COMMIT;
END IF;
IF v_gone THEN
SET v_missing = CONCAT_WS(', ', v_missing, CONCAT('`', REPLACE(v_name, '`', '``'), '`'));
ELSEIF v_stuck THEN
SET v_refused = CONCAT_WS(', ', v_refused, CONCAT('`', REPLACE(v_name, '`', '``'), '`'));
ELSEIF v_seeded AND v_counter IS NULL AND v_mode <> 1 THEN
SET v_later = CONCAT_WS(',', v_later, v_id), v_count = v_count + v_written;
ELSE
DELETE FROM cleandb_dirty WHERE tid = v_id AND conn = CONNECTION_ID();
SET v_finished = CONCAT_WS(',', v_finished, v_id), v_count = v_count + v_written;
END IF;
END LOOP;
CLOSE cur;
SET @cleandb_table = NULL;
IF v_pass = 0 THEN
UPDATE cleandb_config SET tickets = v_next, drifted = (NOT p_restart)
WHERE tickets <> v_next OR drifted <> (NOT p_restart);
END IF;
COMMIT;
SELECT EXISTS (SELECT 1 FROM cleandb_dirty WHERE conn = CONNECTION_ID()) INTO v_again;
IF NOT v_again OR v_missing IS NOT NULL OR v_refused IS NOT NULL THEN
LEAVE passes;
END IF;
SET v_pass = v_pass + 1;
IF v_pass >= 5 THEN
SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
'alembic-cleandb: triggers keep writing tracked tables while the reset restores them, 5 passes in a row; their marks are kept.';
END IF;
END LOOP;
ELSE
UPDATE cleandb_config SET tickets = v_next, drifted = (NOT p_restart)
WHERE tickets <> v_next OR drifted <> (NOT p_restart);
COMMIT;
END IF;
IF v_marks THEN
SET SESSION foreign_key_checks = @cleandb_fk;
SET @cleandb_fk = NULL;
END IF;
IF v_missing IS NOT NULL THEN
SET @cleandb_table = v_missing;
SET v_message = LEFT(CONCAT('alembic-cleandb: tracked table ', v_missing,
' doesn''t exist (dropped or renamed)'), 128);
SIGNAL SQLSTATE '42S02' SET MESSAGE_TEXT = v_message, MYSQL_ERRNO = 1146;
END IF;
IF v_refused IS NOT NULL THEN
SET @cleandb_table = v_refused;
SET v_message = LEFT(CONCAT('alembic-cleandb: restoring ', v_refused, ' fired its own triggers, which refused: ', v_why), 128);
SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_message;
END IF;
SELECT v_count;
END

-- sync, seeded ['`lookup`', '`we``ird`'], fresh=True
SET SESSION sql_mode = @cleandb_mode

-- sync, seeded ['`lookup`', '`we``ird`'], fresh=True
CREATE PROCEDURE cleandb_truncate() CALL cleandb_reset(TRUE)

-- sync, seeded ['`lookup`', '`we``ird`'], fresh=True
DELETE FROM cleandb_tickets

-- sync, seeded ['`lookup`', '`we``ird`'], fresh=True
UPDATE cleandb_config SET tickets = (SELECT next_ticket FROM (SELECT next_not_cached_value AS next_ticket FROM cleandb_ticket_seq) s)

-- sync, seeded [], fresh=False
DROP PROCEDURE IF EXISTS cleandb_truncate

-- sync, seeded [], fresh=False
DROP PROCEDURE IF EXISTS cleandb_reset

-- sync, seeded [], fresh=False
SET @cleandb_mode = @@SESSION.sql_mode

-- sync, seeded [], fresh=False
SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'NO_AUTO_VALUE_ON_ZERO')

-- sync, seeded [], fresh=False
CREATE PROCEDURE cleandb_reset(IN p_restart BOOLEAN)
proc: BEGIN
DECLARE v_id INT;
DECLARE v_name VARCHAR(64) CHARACTER SET utf8mb4;
DECLARE v_reset, v_restore, v_counter, v_empty, v_missing, v_ddl, v_nowait TEXT CHARACTER SET utf8mb4;
DECLARE v_update, v_fupdate TEXT CHARACTER SET utf8mb4;
DECLARE v_finished, v_later, v_freset, v_frestore TEXT CHARACTER SET utf8mb4;
DECLARE v_fname VARCHAR(64) CHARACTER SET utf8mb4;
DECLARE v_message VARCHAR(128) CHARACTER SET utf8mb4;
DECLARE v_inserted, v_updated, v_written, v_done, v_gone, v_here INT DEFAULT 0;
DECLARE v_last, v_busy, v_ran, v_seeded, v_fid, v_swap, v_drift INT DEFAULT 0;
DECLARE v_count, v_marks, v_tries, v_pass, v_again, v_mode, v_stuck INT DEFAULT 0;
DECLARE v_refused, v_why, v_seqs TEXT CHARACTER SET utf8mb4;
DECLARE v_next, v_seen, v_kept, v_base, v_now BIGINT DEFAULT 0;
DECLARE cur CURSOR FOR
SELECT tid, MAX(kind IN ('i', 'a')), MAX(kind = 'u'), MAX(kind <> 'a')
FROM cleandb_dirty GROUP BY tid ORDER BY tid;
DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = 1;
DECLARE EXIT HANDLER FOR SQLEXCEPTION
BEGIN
ROLLBACK;
IF @cleandb_fk IS NOT NULL THEN
SET SESSION foreign_key_checks = @cleandb_fk;
SET @cleandb_fk = NULL;
END IF;
RESIGNAL;
END;
SET @cleandb_table = NULL;
IF (SELECT COUNT(*) FROM cleandb_dirty_nt) > 0 THEN
INSERT IGNORE INTO cleandb_dirty (tid, kind) SELECT tid, kind FROM cleandb_dirty_nt;
COMMIT;
DELETE FROM cleandb_dirty_nt;
END IF;
SELECT s.next_ticket, c.tickets, c.drifted AND p_restart,
EXISTS (SELECT 1 FROM cleandb_dirty), c.database_name = DATABASE(), '',
''
INTO v_next, v_seen, v_drift, v_marks, v_here, v_empty, v_seqs
FROM cleandb_config c, (SELECT next_not_cached_value AS next_ticket FROM cleandb_ticket_seq) s LIMIT 1;
IF v_done THEN
SELECT EXISTS (SELECT 1 FROM cleandb_dirty) INTO v_marks;
END IF;
IF NOT p_restart THEN
SET v_seqs = '';
END IF;
IF v_next = v_seen AND NOT v_marks AND NOT v_done AND NOT v_drift
AND (v_empty IS NULL OR v_empty = '') AND (v_seqs IS NULL OR v_seqs = '') THEN
SELECT 0;
LEAVE proc;
END IF;
IF v_empty <> '' THEN
INSERT IGNORE INTO cleandb_dirty (tid, kind) SELECT id, 'i' FROM cleandb_tables
WHERE FIND_IN_SET(id, v_empty) > 0;
SET v_marks = 1;
END IF;
IF p_restart AND (v_next <> v_seen OR v_drift) THEN
SELECT COUNT(*) INTO v_kept FROM cleandb_tickets WHERE id >= v_seen AND id < v_next;
IF v_kept <> v_next - v_seen OR v_drift THEN
INSERT IGNORE INTO cleandb_dirty (tid, kind)
SELECT t.id, 'a' FROM cleandb_tables t JOIN information_schema.TABLES s
ON s.TABLE_SCHEMA = DATABASE() AND s.TABLE_NAME = t.name
WHERE t.counter IS NOT NULL AND s.AUTO_INCREMENT <> t.counter;
SELECT COUNT(*) INTO v_marks FROM cleandb_dirty;
END IF;
END IF;
IF v_marks THEN
IF NOT v_here THEN
SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'alembic-cleandb: tracking here was installed in another database; refusing to reset. Adopt a copied test database with alembic_cleandb.adopt(url).';
END IF;
SET @cleandb_fk = @@SESSION.foreign_key_checks;
SET SESSION foreign_key_checks = 0;
passes: LOOP
SET v_done = 0;
OPEN cur;
tables: LOOP
FETCH cur INTO v_id, v_inserted, v_updated, v_written;
SET v_last = v_done, v_busy = 0, v_ran = 0, v_gone = 0, v_stuck = 0;
IF NOT v_last THEN
SELECT name, reset_sql, restore_sql, counter_sql, counter, update_sql, reset_mode
INTO v_name, v_reset, v_restore, v_counter, v_base, v_update, v_mode
FROM cleandb_tables WHERE id = v_id;
IF v_done THEN
SET v_done = 0;
DELETE FROM cleandb_dirty WHERE tid = v_id;
ITERATE tables;
END IF;
SET @cleandb_table = v_name;
IF NOT p_restart AND v_mode <> 1 THEN
SET v_later = CONCAT_WS(',', v_later, v_id), v_count = v_count + v_written;
ITERATE tables;
END IF;
IF v_restore IS NULL THEN
SET v_seeded = 0, v_ddl = v_reset;
SET v_nowait = CONCAT(v_ddl, ' NOWAIT');
ELSEIF v_mode = 1 THEN
SET v_seeded = 1,
v_ddl = CONCAT('TRUNCATE TABLE `', REPLACE(v_name, '`', '``'), '`');
SET v_nowait = CONCAT(v_ddl, ' NOWAIT');
ELSE
IF v_base IS NOT NULL AND v_updated AND NOT v_inserted THEN
SELECT AUTO_INCREMENT INTO v_now FROM information_schema.TABLES
WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = v_name;
SET v_inserted = v_now <> v_base, v_done = 0;
END IF;
IF v_base IS NULL OR NOT v_inserted THEN
SET v_later = CONCAT_WS(',', v_later, v_id), v_count = v_count + v_written;
ITERATE tables;
END IF;
IF v_update IS NULL AND v_mode <> 2 THEN
SET v_seeded = 1,
v_ddl = CONCAT('TRUNCATE TABLE `', REPLACE(v_name, '`', '``'), '`');
SET v_nowait = CONCAT(v_ddl, ' NOWAIT');
ELSE
START TRANSACTION;
BEGIN
DECLARE EXIT HANDLER FOR 1146 SET v_gone = 1;
SET @cleandb_sql = v_reset, v_swap = 0;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
BEGIN
DECLARE EXIT HANDLER FOR 1062 SET v_swap = 1;
SET @cleandb_sql = v_restore;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
IF v_update IS NOT NULL THEN
SET @cleandb_sql = v_update;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
END IF;
END;
IF v_swap THEN
SET @cleandb_sql = CONCAT('DELETE FROM `', REPLACE(v_name, '`', '``'), '`');
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
SET @cleandb_sql = v_restore;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
IF v_update IS NOT NULL THEN
SET @cleandb_sql = v_update;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
END IF;
END IF;
DEALLOCATE PREPARE cleandb_stmt;
END;
SET v_seeded = 0, v_ddl = v_counter, v_counter = NULL;
SET v_nowait = CONCAT('ALTER TABLE `', REPLACE(v_name, '`', '``'), '` NOWAIT AUTO_INCREMENT = ', v_base);
END IF;
END IF;
IF v_later IS NOT NULL OR v_finished IS NOT NULL THEN
SET @cleandb_sql = v_nowait, v_tries = 0;
PREPARE cleandb_stmt FROM @cleandb_sql;
REPEAT
SET v_busy = 0, v_tries = v_tries + 1;
BEGIN
DECLARE EXIT HANDLER FOR 1205 SET v_busy = 1;
DECLARE EXIT HANDLER FOR 1146 SET v_gone = 1;
EXECUTE cleandb_stmt;
SET v_ran = 1;
END;
UNTIL NOT v_busy OR v_tries >= 4 END REPEAT;
END IF;
END IF;
IF v_last OR v_busy THEN
START TRANSACTION;
WHILE v_later IS NOT NULL DO
SET v_fid = SUBSTRING_INDEX(v_later, ',', 1);
SET v_later = NULLIF(SUBSTRING(v_later, LENGTH(v_fid) + 2), '');
SELECT name, reset_sql, restore_sql, update_sql
INTO v_fname, v_freset, v_frestore, v_fupdate FROM cleandb_tables WHERE id = v_fid;
SET @cleandb_table = v_fname, v_gone = 0;
IF v_frestore IS NULL THEN
BEGIN
DECLARE EXIT HANDLER FOR 1146 SET v_gone = 1;
SET @cleandb_sql = CONCAT('DELETE FROM `', REPLACE(v_fname, '`', '``'), '`');
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
DEALLOCATE PREPARE cleandb_stmt;
END;
ELSE
BEGIN
DECLARE EXIT HANDLER FOR 1146 SET v_gone = 1;
SET @cleandb_sql = v_freset, v_swap = 0;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
BEGIN
DECLARE EXIT HANDLER FOR 1062 SET v_swap = 1;
SET @cleandb_sql = v_frestore;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
IF v_fupdate IS NOT NULL THEN
SET @cleandb_sql = v_fupdate;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
END IF;
END;
IF v_swap THEN
SET @cleandb_sql = CONCAT('DELETE FROM `', REPLACE(v_fname, '`', '``'), '`');
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
SET @cleandb_sql = v_frestore;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
IF v_fupdate IS NOT NULL THEN
SET @cleandb_sql = v_fupdate;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
END IF;
END IF;
DEALLOCATE PREPARE cleandb_stmt;
END;
END IF;
IF v_gone THEN
SET v_missing = CONCAT_WS(', ', v_missing, CONCAT('`', REPLACE(v_fname, '`', '``'), '`'));
ELSE
DELETE FROM cleandb_dirty WHERE tid = v_fid;
END IF;
END WHILE;
IF v_finished IS NOT NULL THEN
SET @cleandb_sql = CONCAT('DELETE FROM cleandb_dirty WHERE tid IN (', v_finished, ') AND conn <> CONNECTION_ID()');
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
DEALLOCATE PREPARE cleandb_stmt;
SET v_finished = NULL;
END IF;
IF v_last THEN
LEAVE tables;
END IF;
SET @cleandb_table = v_name, v_gone = 0;
END IF;
IF NOT v_gone THEN
BEGIN
DECLARE EXIT HANDLER FOR 1146 SET v_gone = 1;
IF NOT v_ran THEN
SET @cleandb_sql = v_ddl;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
END IF;
IF v_counter IS NOT NULL THEN
IF v_seeded AND v_mode <> 1 THEN
SET @cleandb_sql = v_restore;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
END IF;
SET @cleandb_sql = v_counter;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
END IF;
DEALLOCATE PREPARE cleandb_stmt;
END;
END IF;
IF v_seeded AND v_mode = 1 AND NOT v_gone THEN
BEGIN
DECLARE EXIT HANDLER FOR SQLEXCEPTION
BEGIN
GET DIAGNOSTICS CONDITION 1 v_why = MESSAGE_TEXT;
SET v_stuck = 1;
END;
SET @cleandb_sql = v_restore;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
IF v_update IS NOT NULL THEN
SET @cleandb_sql = v_update;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
END IF;
END;
COMMIT;
END IF;
IF v_gone THEN
SET v_missing = CONCAT_WS(', ', v_missing, CONCAT('`', REPLACE(v_name, '`', '``'), '`'));
ELSEIF v_stuck THEN
SET v_refused = CONCAT_WS(', ', v_refused, CONCAT('`', REPLACE(v_name, '`', '``'), '`'));
ELSEIF v_seeded AND v_counter IS NULL AND v_mode <> 1 THEN
SET v_later = CONCAT_WS(',', v_later, v_id), v_count = v_count + v_written;
ELSE
DELETE FROM cleandb_dirty WHERE tid = v_id AND conn = CONNECTION_ID();
SET v_finished = CONCAT_WS(',', v_finished, v_id), v_count = v_count + v_written;
END IF;
END LOOP;
CLOSE cur;
SET @cleandb_table = NULL;
IF v_pass = 0 THEN
UPDATE cleandb_config SET tickets = v_next, drifted = (NOT p_restart)
WHERE tickets <> v_next OR drifted <> (NOT p_restart);
END IF;
COMMIT;
SELECT EXISTS (SELECT 1 FROM cleandb_dirty WHERE conn = CONNECTION_ID()) INTO v_again;
IF NOT v_again OR v_missing IS NOT NULL OR v_refused IS NOT NULL THEN
LEAVE passes;
END IF;
SET v_pass = v_pass + 1;
IF v_pass >= 5 THEN
SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
'alembic-cleandb: triggers keep writing tracked tables while the reset restores them, 5 passes in a row; their marks are kept.';
END IF;
END LOOP;
ELSE
UPDATE cleandb_config SET tickets = v_next, drifted = (NOT p_restart)
WHERE tickets <> v_next OR drifted <> (NOT p_restart);
COMMIT;
END IF;
IF v_marks THEN
SET SESSION foreign_key_checks = @cleandb_fk;
SET @cleandb_fk = NULL;
END IF;
IF v_missing IS NOT NULL THEN
SET @cleandb_table = v_missing;
SET v_message = LEFT(CONCAT('alembic-cleandb: tracked table ', v_missing,
' doesn''t exist (dropped or renamed)'), 128);
SIGNAL SQLSTATE '42S02' SET MESSAGE_TEXT = v_message, MYSQL_ERRNO = 1146;
END IF;
IF v_refused IS NOT NULL THEN
SET @cleandb_table = v_refused;
SET v_message = LEFT(CONCAT('alembic-cleandb: restoring ', v_refused, ' fired its own triggers, which refused: ', v_why), 128);
SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_message;
END IF;
SELECT v_count;
END

-- sync, seeded [], fresh=False
SET SESSION sql_mode = @cleandb_mode

-- sync, seeded [], fresh=False
CREATE PROCEDURE cleandb_truncate() CALL cleandb_reset(TRUE)

-- reset procedure with counter probes and non-transactional marks
CREATE PROCEDURE cleandb_reset(IN p_restart BOOLEAN)
proc: BEGIN
DECLARE v_id INT;
DECLARE v_name VARCHAR(64) CHARACTER SET utf8mb4;
DECLARE v_reset, v_restore, v_counter, v_empty, v_missing, v_ddl, v_nowait TEXT CHARACTER SET utf8mb4;
DECLARE v_update, v_fupdate TEXT CHARACTER SET utf8mb4;
DECLARE v_finished, v_later, v_freset, v_frestore TEXT CHARACTER SET utf8mb4;
DECLARE v_fname VARCHAR(64) CHARACTER SET utf8mb4;
DECLARE v_message VARCHAR(128) CHARACTER SET utf8mb4;
DECLARE v_inserted, v_updated, v_written, v_done, v_gone, v_here INT DEFAULT 0;
DECLARE v_last, v_busy, v_ran, v_seeded, v_fid, v_swap, v_drift INT DEFAULT 0;
DECLARE v_count, v_marks, v_tries, v_pass, v_again, v_mode, v_stuck INT DEFAULT 0;
DECLARE v_refused, v_why, v_seqs TEXT CHARACTER SET utf8mb4;
DECLARE v_next, v_seen, v_kept, v_base, v_now BIGINT DEFAULT 0;
DECLARE cur CURSOR FOR
SELECT tid, MAX(kind IN ('i', 'a')), MAX(kind = 'u'), MAX(kind <> 'a')
FROM cleandb_dirty GROUP BY tid ORDER BY tid;
DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = 1;
DECLARE EXIT HANDLER FOR SQLEXCEPTION
BEGIN
ROLLBACK;
IF @cleandb_fk IS NOT NULL THEN
SET SESSION foreign_key_checks = @cleandb_fk;
SET @cleandb_fk = NULL;
END IF;
RESIGNAL;
END;
SET @cleandb_table = NULL;
IF (SELECT COUNT(*) FROM cleandb_dirty_nt) > 0 THEN
INSERT IGNORE INTO cleandb_dirty (tid, kind) SELECT tid, kind FROM cleandb_dirty_nt;
COMMIT;
DELETE FROM cleandb_dirty_nt;
END IF;
SELECT s.next_ticket, c.tickets, c.drifted AND p_restart,
EXISTS (SELECT 1 FROM cleandb_dirty), c.database_name = DATABASE(), CONCAT_WS(',', IF(EXISTS (SELECT 1 FROM `lookup`), NULL, 3), IF(NOT p_restart OR (SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = CONVERT(X'696e60766f696365' USING utf8mb4)) = 1000, NULL, 5)),
''
INTO v_next, v_seen, v_drift, v_marks, v_here, v_empty, v_seqs
FROM cleandb_config c, (SELECT next_not_cached_value AS next_ticket FROM cleandb_ticket_seq) s LIMIT 1;
IF v_done THEN
SELECT EXISTS (SELECT 1 FROM cleandb_dirty) INTO v_marks;
END IF;
IF NOT p_restart THEN
SET v_seqs = '';
END IF;
IF v_next = v_seen AND NOT v_marks AND NOT v_done AND NOT v_drift
AND (v_empty IS NULL OR v_empty = '') AND (v_seqs IS NULL OR v_seqs = '') THEN
SELECT 0;
LEAVE proc;
END IF;
IF v_empty <> '' THEN
INSERT IGNORE INTO cleandb_dirty (tid, kind) SELECT id, 'i' FROM cleandb_tables
WHERE FIND_IN_SET(id, v_empty) > 0;
SET v_marks = 1;
END IF;
IF p_restart AND (v_next <> v_seen OR v_drift) THEN
SELECT COUNT(*) INTO v_kept FROM cleandb_tickets WHERE id >= v_seen AND id < v_next;
IF v_kept <> v_next - v_seen OR v_drift THEN
INSERT IGNORE INTO cleandb_dirty (tid, kind)
SELECT t.id, 'a' FROM cleandb_tables t JOIN information_schema.TABLES s
ON s.TABLE_SCHEMA = DATABASE() AND s.TABLE_NAME = t.name
WHERE t.counter IS NOT NULL AND s.AUTO_INCREMENT <> t.counter;
SELECT COUNT(*) INTO v_marks FROM cleandb_dirty;
END IF;
END IF;
IF v_marks THEN
IF NOT v_here THEN
SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'alembic-cleandb: tracking here was installed in another database; refusing to reset. Adopt a copied test database with alembic_cleandb.adopt(url).';
END IF;
SET @cleandb_fk = @@SESSION.foreign_key_checks;
SET SESSION foreign_key_checks = 0;
passes: LOOP
SET v_done = 0;
OPEN cur;
tables: LOOP
FETCH cur INTO v_id, v_inserted, v_updated, v_written;
SET v_last = v_done, v_busy = 0, v_ran = 0, v_gone = 0, v_stuck = 0;
IF NOT v_last THEN
SELECT name, reset_sql, restore_sql, counter_sql, counter, update_sql, reset_mode
INTO v_name, v_reset, v_restore, v_counter, v_base, v_update, v_mode
FROM cleandb_tables WHERE id = v_id;
IF v_done THEN
SET v_done = 0;
DELETE FROM cleandb_dirty WHERE tid = v_id;
ITERATE tables;
END IF;
SET @cleandb_table = v_name;
IF NOT p_restart AND v_mode <> 1 THEN
SET v_later = CONCAT_WS(',', v_later, v_id), v_count = v_count + v_written;
ITERATE tables;
END IF;
IF v_restore IS NULL THEN
SET v_seeded = 0, v_ddl = v_reset;
SET v_nowait = CONCAT(v_ddl, ' NOWAIT');
ELSEIF v_mode = 1 THEN
SET v_seeded = 1,
v_ddl = CONCAT('TRUNCATE TABLE `', REPLACE(v_name, '`', '``'), '`');
SET v_nowait = CONCAT(v_ddl, ' NOWAIT');
ELSE
IF v_base IS NOT NULL AND v_updated AND NOT v_inserted THEN
SELECT AUTO_INCREMENT INTO v_now FROM information_schema.TABLES
WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = v_name;
SET v_inserted = v_now <> v_base, v_done = 0;
END IF;
IF v_base IS NULL OR NOT v_inserted THEN
SET v_later = CONCAT_WS(',', v_later, v_id), v_count = v_count + v_written;
ITERATE tables;
END IF;
IF v_update IS NULL AND v_mode <> 2 THEN
SET v_seeded = 1,
v_ddl = CONCAT('TRUNCATE TABLE `', REPLACE(v_name, '`', '``'), '`');
SET v_nowait = CONCAT(v_ddl, ' NOWAIT');
ELSE
START TRANSACTION;
BEGIN
DECLARE EXIT HANDLER FOR 1146 SET v_gone = 1;
SET @cleandb_sql = v_reset, v_swap = 0;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
BEGIN
DECLARE EXIT HANDLER FOR 1062 SET v_swap = 1;
SET @cleandb_sql = v_restore;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
IF v_update IS NOT NULL THEN
SET @cleandb_sql = v_update;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
END IF;
END;
IF v_swap THEN
SET @cleandb_sql = CONCAT('DELETE FROM `', REPLACE(v_name, '`', '``'), '`');
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
SET @cleandb_sql = v_restore;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
IF v_update IS NOT NULL THEN
SET @cleandb_sql = v_update;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
END IF;
END IF;
DEALLOCATE PREPARE cleandb_stmt;
END;
SET v_seeded = 0, v_ddl = v_counter, v_counter = NULL;
SET v_nowait = CONCAT('ALTER TABLE `', REPLACE(v_name, '`', '``'), '` NOWAIT AUTO_INCREMENT = ', v_base);
END IF;
END IF;
IF v_later IS NOT NULL OR v_finished IS NOT NULL THEN
SET @cleandb_sql = v_nowait, v_tries = 0;
PREPARE cleandb_stmt FROM @cleandb_sql;
REPEAT
SET v_busy = 0, v_tries = v_tries + 1;
BEGIN
DECLARE EXIT HANDLER FOR 1205 SET v_busy = 1;
DECLARE EXIT HANDLER FOR 1146 SET v_gone = 1;
EXECUTE cleandb_stmt;
SET v_ran = 1;
END;
UNTIL NOT v_busy OR v_tries >= 4 END REPEAT;
END IF;
END IF;
IF v_last OR v_busy THEN
START TRANSACTION;
WHILE v_later IS NOT NULL DO
SET v_fid = SUBSTRING_INDEX(v_later, ',', 1);
SET v_later = NULLIF(SUBSTRING(v_later, LENGTH(v_fid) + 2), '');
SELECT name, reset_sql, restore_sql, update_sql
INTO v_fname, v_freset, v_frestore, v_fupdate FROM cleandb_tables WHERE id = v_fid;
SET @cleandb_table = v_fname, v_gone = 0;
IF v_frestore IS NULL THEN
BEGIN
DECLARE EXIT HANDLER FOR 1146 SET v_gone = 1;
SET @cleandb_sql = CONCAT('DELETE FROM `', REPLACE(v_fname, '`', '``'), '`');
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
DEALLOCATE PREPARE cleandb_stmt;
END;
ELSE
BEGIN
DECLARE EXIT HANDLER FOR 1146 SET v_gone = 1;
SET @cleandb_sql = v_freset, v_swap = 0;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
BEGIN
DECLARE EXIT HANDLER FOR 1062 SET v_swap = 1;
SET @cleandb_sql = v_frestore;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
IF v_fupdate IS NOT NULL THEN
SET @cleandb_sql = v_fupdate;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
END IF;
END;
IF v_swap THEN
SET @cleandb_sql = CONCAT('DELETE FROM `', REPLACE(v_fname, '`', '``'), '`');
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
SET @cleandb_sql = v_frestore;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
IF v_fupdate IS NOT NULL THEN
SET @cleandb_sql = v_fupdate;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
END IF;
END IF;
DEALLOCATE PREPARE cleandb_stmt;
END;
END IF;
IF v_gone THEN
SET v_missing = CONCAT_WS(', ', v_missing, CONCAT('`', REPLACE(v_fname, '`', '``'), '`'));
ELSE
DELETE FROM cleandb_dirty WHERE tid = v_fid;
END IF;
END WHILE;
IF v_finished IS NOT NULL THEN
SET @cleandb_sql = CONCAT('DELETE FROM cleandb_dirty WHERE tid IN (', v_finished, ') AND conn <> CONNECTION_ID()');
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
DEALLOCATE PREPARE cleandb_stmt;
SET v_finished = NULL;
END IF;
IF v_last THEN
LEAVE tables;
END IF;
SET @cleandb_table = v_name, v_gone = 0;
END IF;
IF NOT v_gone THEN
BEGIN
DECLARE EXIT HANDLER FOR 1146 SET v_gone = 1;
IF NOT v_ran THEN
SET @cleandb_sql = v_ddl;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
END IF;
IF v_counter IS NOT NULL THEN
IF v_seeded AND v_mode <> 1 THEN
SET @cleandb_sql = v_restore;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
END IF;
SET @cleandb_sql = v_counter;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
END IF;
DEALLOCATE PREPARE cleandb_stmt;
END;
END IF;
IF v_seeded AND v_mode = 1 AND NOT v_gone THEN
BEGIN
DECLARE EXIT HANDLER FOR SQLEXCEPTION
BEGIN
GET DIAGNOSTICS CONDITION 1 v_why = MESSAGE_TEXT;
SET v_stuck = 1;
END;
SET @cleandb_sql = v_restore;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
IF v_update IS NOT NULL THEN
SET @cleandb_sql = v_update;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
END IF;
END;
COMMIT;
END IF;
IF v_gone THEN
SET v_missing = CONCAT_WS(', ', v_missing, CONCAT('`', REPLACE(v_name, '`', '``'), '`'));
ELSEIF v_stuck THEN
SET v_refused = CONCAT_WS(', ', v_refused, CONCAT('`', REPLACE(v_name, '`', '``'), '`'));
ELSEIF v_seeded AND v_counter IS NULL AND v_mode <> 1 THEN
SET v_later = CONCAT_WS(',', v_later, v_id), v_count = v_count + v_written;
ELSE
DELETE FROM cleandb_dirty WHERE tid = v_id AND conn = CONNECTION_ID();
SET v_finished = CONCAT_WS(',', v_finished, v_id), v_count = v_count + v_written;
END IF;
END LOOP;
CLOSE cur;
SET @cleandb_table = NULL;
IF v_pass = 0 THEN
UPDATE cleandb_config SET tickets = v_next, drifted = (NOT p_restart)
WHERE tickets <> v_next OR drifted <> (NOT p_restart);
END IF;
COMMIT;
SELECT EXISTS (SELECT 1 FROM cleandb_dirty WHERE conn = CONNECTION_ID()) INTO v_again;
IF NOT v_again OR v_missing IS NOT NULL OR v_refused IS NOT NULL THEN
LEAVE passes;
END IF;
SET v_pass = v_pass + 1;
IF v_pass >= 5 THEN
SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
'alembic-cleandb: triggers keep writing tracked tables while the reset restores them, 5 passes in a row; their marks are kept.';
END IF;
END LOOP;
ELSE
UPDATE cleandb_config SET tickets = v_next, drifted = (NOT p_restart)
WHERE tickets <> v_next OR drifted <> (NOT p_restart);
COMMIT;
END IF;
IF v_marks THEN
SET SESSION foreign_key_checks = @cleandb_fk;
SET @cleandb_fk = NULL;
END IF;
IF v_missing IS NOT NULL THEN
SET @cleandb_table = v_missing;
SET v_message = LEFT(CONCAT('alembic-cleandb: tracked table ', v_missing,
' doesn''t exist (dropped or renamed)'), 128);
SIGNAL SQLSTATE '42S02' SET MESSAGE_TEXT = v_message, MYSQL_ERRNO = 1146;
END IF;
IF v_refused IS NOT NULL THEN
SET @cleandb_table = v_refused;
SET v_message = LEFT(CONCAT('alembic-cleandb: restoring ', v_refused, ' fired its own triggers, which refused: ', v_why), 128);
SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_message;
END IF;
SELECT v_count;
END

-- trigger i, MyISAM table
CREATE TRIGGER cleandb_7_i BEFORE INSERT ON `my``isam` FOR EACH ROW BEGIN DECLARE EXIT HANDLER FOR 1062 BEGIN END; INSERT INTO cleandb_dirty_nt (tid, kind, conn) VALUES (7, 'i', CONNECTION_ID()); INSERT INTO cleandb_tickets (id) VALUES (NEXT VALUE FOR cleandb_ticket_seq); END

-- reset procedure with sequences `invoice no` and `s`
CREATE PROCEDURE cleandb_reset(IN p_restart BOOLEAN)
proc: BEGIN
DECLARE v_id INT;
DECLARE v_name VARCHAR(64) CHARACTER SET utf8mb4;
DECLARE v_reset, v_restore, v_counter, v_empty, v_missing, v_ddl, v_nowait TEXT CHARACTER SET utf8mb4;
DECLARE v_update, v_fupdate TEXT CHARACTER SET utf8mb4;
DECLARE v_finished, v_later, v_freset, v_frestore TEXT CHARACTER SET utf8mb4;
DECLARE v_fname VARCHAR(64) CHARACTER SET utf8mb4;
DECLARE v_message VARCHAR(128) CHARACTER SET utf8mb4;
DECLARE v_inserted, v_updated, v_written, v_done, v_gone, v_here INT DEFAULT 0;
DECLARE v_last, v_busy, v_ran, v_seeded, v_fid, v_swap, v_drift INT DEFAULT 0;
DECLARE v_count, v_marks, v_tries, v_pass, v_again, v_mode, v_stuck INT DEFAULT 0;
DECLARE v_refused, v_why, v_seqs TEXT CHARACTER SET utf8mb4;
DECLARE v_next, v_seen, v_kept, v_base, v_now BIGINT DEFAULT 0;
DECLARE cur CURSOR FOR
SELECT tid, MAX(kind IN ('i', 'a')), MAX(kind = 'u'), MAX(kind <> 'a')
FROM cleandb_dirty GROUP BY tid ORDER BY tid;
DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = 1;
DECLARE EXIT HANDLER FOR SQLEXCEPTION
BEGIN
ROLLBACK;
IF @cleandb_fk IS NOT NULL THEN
SET SESSION foreign_key_checks = @cleandb_fk;
SET @cleandb_fk = NULL;
END IF;
RESIGNAL;
END;
SET @cleandb_table = NULL;
SELECT s.next_ticket, c.tickets, c.drifted AND p_restart,
EXISTS (SELECT 1 FROM cleandb_dirty), c.database_name = DATABASE(), '',
CONCAT_WS(',', IF((SELECT next_not_cached_value FROM `invoice no`) = 1000, NULL, 1), IF((SELECT next_not_cached_value FROM `s`) = -5, NULL, 2))
INTO v_next, v_seen, v_drift, v_marks, v_here, v_empty, v_seqs
FROM cleandb_config c, (SELECT next_not_cached_value AS next_ticket FROM cleandb_ticket_seq) s LIMIT 1;
IF v_done THEN
SELECT EXISTS (SELECT 1 FROM cleandb_dirty) INTO v_marks;
END IF;
IF NOT p_restart THEN
SET v_seqs = '';
END IF;
IF v_next = v_seen AND NOT v_marks AND NOT v_done AND NOT v_drift
AND (v_empty IS NULL OR v_empty = '') AND (v_seqs IS NULL OR v_seqs = '') THEN
SELECT 0;
LEAVE proc;
END IF;
IF v_seqs <> '' THEN
IF NOT v_here THEN
SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'alembic-cleandb: tracking here was installed in another database; refusing to reset. Adopt a copied test database with alembic_cleandb.adopt(url).';
END IF;
IF FIND_IN_SET(1, v_seqs) THEN ALTER SEQUENCE `invoice no` RESTART WITH 1000; END IF;
IF FIND_IN_SET(2, v_seqs) THEN ALTER SEQUENCE `s` RESTART WITH -5; END IF;
END IF;
IF v_empty <> '' THEN
INSERT IGNORE INTO cleandb_dirty (tid, kind) SELECT id, 'i' FROM cleandb_tables
WHERE FIND_IN_SET(id, v_empty) > 0;
SET v_marks = 1;
END IF;
IF p_restart AND (v_next <> v_seen OR v_drift) THEN
SELECT COUNT(*) INTO v_kept FROM cleandb_tickets WHERE id >= v_seen AND id < v_next;
IF v_kept <> v_next - v_seen OR v_drift THEN
INSERT IGNORE INTO cleandb_dirty (tid, kind)
SELECT t.id, 'a' FROM cleandb_tables t JOIN information_schema.TABLES s
ON s.TABLE_SCHEMA = DATABASE() AND s.TABLE_NAME = t.name
WHERE t.counter IS NOT NULL AND s.AUTO_INCREMENT <> t.counter;
SELECT COUNT(*) INTO v_marks FROM cleandb_dirty;
END IF;
END IF;
IF v_marks THEN
IF NOT v_here THEN
SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'alembic-cleandb: tracking here was installed in another database; refusing to reset. Adopt a copied test database with alembic_cleandb.adopt(url).';
END IF;
SET @cleandb_fk = @@SESSION.foreign_key_checks;
SET SESSION foreign_key_checks = 0;
passes: LOOP
SET v_done = 0;
OPEN cur;
tables: LOOP
FETCH cur INTO v_id, v_inserted, v_updated, v_written;
SET v_last = v_done, v_busy = 0, v_ran = 0, v_gone = 0, v_stuck = 0;
IF NOT v_last THEN
SELECT name, reset_sql, restore_sql, counter_sql, counter, update_sql, reset_mode
INTO v_name, v_reset, v_restore, v_counter, v_base, v_update, v_mode
FROM cleandb_tables WHERE id = v_id;
IF v_done THEN
SET v_done = 0;
DELETE FROM cleandb_dirty WHERE tid = v_id;
ITERATE tables;
END IF;
SET @cleandb_table = v_name;
IF NOT p_restart AND v_mode <> 1 THEN
SET v_later = CONCAT_WS(',', v_later, v_id), v_count = v_count + v_written;
ITERATE tables;
END IF;
IF v_restore IS NULL THEN
SET v_seeded = 0, v_ddl = v_reset;
SET v_nowait = CONCAT(v_ddl, ' NOWAIT');
ELSEIF v_mode = 1 THEN
SET v_seeded = 1,
v_ddl = CONCAT('TRUNCATE TABLE `', REPLACE(v_name, '`', '``'), '`');
SET v_nowait = CONCAT(v_ddl, ' NOWAIT');
ELSE
IF v_base IS NOT NULL AND v_updated AND NOT v_inserted THEN
SELECT AUTO_INCREMENT INTO v_now FROM information_schema.TABLES
WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = v_name;
SET v_inserted = v_now <> v_base, v_done = 0;
END IF;
IF v_base IS NULL OR NOT v_inserted THEN
SET v_later = CONCAT_WS(',', v_later, v_id), v_count = v_count + v_written;
ITERATE tables;
END IF;
IF v_update IS NULL AND v_mode <> 2 THEN
SET v_seeded = 1,
v_ddl = CONCAT('TRUNCATE TABLE `', REPLACE(v_name, '`', '``'), '`');
SET v_nowait = CONCAT(v_ddl, ' NOWAIT');
ELSE
START TRANSACTION;
BEGIN
DECLARE EXIT HANDLER FOR 1146 SET v_gone = 1;
SET @cleandb_sql = v_reset, v_swap = 0;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
BEGIN
DECLARE EXIT HANDLER FOR 1062 SET v_swap = 1;
SET @cleandb_sql = v_restore;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
IF v_update IS NOT NULL THEN
SET @cleandb_sql = v_update;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
END IF;
END;
IF v_swap THEN
SET @cleandb_sql = CONCAT('DELETE FROM `', REPLACE(v_name, '`', '``'), '`');
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
SET @cleandb_sql = v_restore;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
IF v_update IS NOT NULL THEN
SET @cleandb_sql = v_update;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
END IF;
END IF;
DEALLOCATE PREPARE cleandb_stmt;
END;
SET v_seeded = 0, v_ddl = v_counter, v_counter = NULL;
SET v_nowait = CONCAT('ALTER TABLE `', REPLACE(v_name, '`', '``'), '` NOWAIT AUTO_INCREMENT = ', v_base);
END IF;
END IF;
IF v_later IS NOT NULL OR v_finished IS NOT NULL THEN
SET @cleandb_sql = v_nowait, v_tries = 0;
PREPARE cleandb_stmt FROM @cleandb_sql;
REPEAT
SET v_busy = 0, v_tries = v_tries + 1;
BEGIN
DECLARE EXIT HANDLER FOR 1205 SET v_busy = 1;
DECLARE EXIT HANDLER FOR 1146 SET v_gone = 1;
EXECUTE cleandb_stmt;
SET v_ran = 1;
END;
UNTIL NOT v_busy OR v_tries >= 4 END REPEAT;
END IF;
END IF;
IF v_last OR v_busy THEN
START TRANSACTION;
WHILE v_later IS NOT NULL DO
SET v_fid = SUBSTRING_INDEX(v_later, ',', 1);
SET v_later = NULLIF(SUBSTRING(v_later, LENGTH(v_fid) + 2), '');
SELECT name, reset_sql, restore_sql, update_sql
INTO v_fname, v_freset, v_frestore, v_fupdate FROM cleandb_tables WHERE id = v_fid;
SET @cleandb_table = v_fname, v_gone = 0;
IF v_frestore IS NULL THEN
BEGIN
DECLARE EXIT HANDLER FOR 1146 SET v_gone = 1;
SET @cleandb_sql = CONCAT('DELETE FROM `', REPLACE(v_fname, '`', '``'), '`');
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
DEALLOCATE PREPARE cleandb_stmt;
END;
ELSE
BEGIN
DECLARE EXIT HANDLER FOR 1146 SET v_gone = 1;
SET @cleandb_sql = v_freset, v_swap = 0;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
BEGIN
DECLARE EXIT HANDLER FOR 1062 SET v_swap = 1;
SET @cleandb_sql = v_frestore;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
IF v_fupdate IS NOT NULL THEN
SET @cleandb_sql = v_fupdate;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
END IF;
END;
IF v_swap THEN
SET @cleandb_sql = CONCAT('DELETE FROM `', REPLACE(v_fname, '`', '``'), '`');
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
SET @cleandb_sql = v_frestore;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
IF v_fupdate IS NOT NULL THEN
SET @cleandb_sql = v_fupdate;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
END IF;
END IF;
DEALLOCATE PREPARE cleandb_stmt;
END;
END IF;
IF v_gone THEN
SET v_missing = CONCAT_WS(', ', v_missing, CONCAT('`', REPLACE(v_fname, '`', '``'), '`'));
ELSE
DELETE FROM cleandb_dirty WHERE tid = v_fid;
END IF;
END WHILE;
IF v_finished IS NOT NULL THEN
SET @cleandb_sql = CONCAT('DELETE FROM cleandb_dirty WHERE tid IN (', v_finished, ') AND conn <> CONNECTION_ID()');
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
DEALLOCATE PREPARE cleandb_stmt;
SET v_finished = NULL;
END IF;
IF v_last THEN
LEAVE tables;
END IF;
SET @cleandb_table = v_name, v_gone = 0;
END IF;
IF NOT v_gone THEN
BEGIN
DECLARE EXIT HANDLER FOR 1146 SET v_gone = 1;
IF NOT v_ran THEN
SET @cleandb_sql = v_ddl;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
END IF;
IF v_counter IS NOT NULL THEN
IF v_seeded AND v_mode <> 1 THEN
SET @cleandb_sql = v_restore;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
END IF;
SET @cleandb_sql = v_counter;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
END IF;
DEALLOCATE PREPARE cleandb_stmt;
END;
END IF;
IF v_seeded AND v_mode = 1 AND NOT v_gone THEN
BEGIN
DECLARE EXIT HANDLER FOR SQLEXCEPTION
BEGIN
GET DIAGNOSTICS CONDITION 1 v_why = MESSAGE_TEXT;
SET v_stuck = 1;
END;
SET @cleandb_sql = v_restore;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
IF v_update IS NOT NULL THEN
SET @cleandb_sql = v_update;
PREPARE cleandb_stmt FROM @cleandb_sql;
EXECUTE cleandb_stmt;
END IF;
END;
COMMIT;
END IF;
IF v_gone THEN
SET v_missing = CONCAT_WS(', ', v_missing, CONCAT('`', REPLACE(v_name, '`', '``'), '`'));
ELSEIF v_stuck THEN
SET v_refused = CONCAT_WS(', ', v_refused, CONCAT('`', REPLACE(v_name, '`', '``'), '`'));
ELSEIF v_seeded AND v_counter IS NULL AND v_mode <> 1 THEN
SET v_later = CONCAT_WS(',', v_later, v_id), v_count = v_count + v_written;
ELSE
DELETE FROM cleandb_dirty WHERE tid = v_id AND conn = CONNECTION_ID();
SET v_finished = CONCAT_WS(',', v_finished, v_id), v_count = v_count + v_written;
END IF;
END LOOP;
CLOSE cur;
SET @cleandb_table = NULL;
IF v_pass = 0 THEN
UPDATE cleandb_config SET tickets = v_next, drifted = (NOT p_restart)
WHERE tickets <> v_next OR drifted <> (NOT p_restart);
END IF;
COMMIT;
SELECT EXISTS (SELECT 1 FROM cleandb_dirty WHERE conn = CONNECTION_ID()) INTO v_again;
IF NOT v_again OR v_missing IS NOT NULL OR v_refused IS NOT NULL THEN
LEAVE passes;
END IF;
SET v_pass = v_pass + 1;
IF v_pass >= 5 THEN
SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT =
'alembic-cleandb: triggers keep writing tracked tables while the reset restores them, 5 passes in a row; their marks are kept.';
END IF;
END LOOP;
ELSE
UPDATE cleandb_config SET tickets = v_next, drifted = (NOT p_restart)
WHERE tickets <> v_next OR drifted <> (NOT p_restart);
COMMIT;
END IF;
IF v_marks THEN
SET SESSION foreign_key_checks = @cleandb_fk;
SET @cleandb_fk = NULL;
END IF;
IF v_missing IS NOT NULL THEN
SET @cleandb_table = v_missing;
SET v_message = LEFT(CONCAT('alembic-cleandb: tracked table ', v_missing,
' doesn''t exist (dropped or renamed)'), 128);
SIGNAL SQLSTATE '42S02' SET MESSAGE_TEXT = v_message, MYSQL_ERRNO = 1146;
END IF;
IF v_refused IS NOT NULL THEN
SET @cleandb_table = v_refused;
SET v_message = LEFT(CONCAT('alembic-cleandb: restoring ', v_refused, ' fired its own triggers, which refused: ', v_why), 128);
SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = v_message;
END IF;
SELECT v_count;
END

