//! Moving a single-node SQLite install to PostgreSQL.
