// Package sqlstore is the SQL backend: MySQL/MariaDB, PostgreSQL and SQLite behind one Store.
package sqlstore
