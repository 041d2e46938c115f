//! theta-server's integration tests: one binary, one module per area.

mod cli_store;
