//! Integration tests of theta-server: component tests on the router (no socket), the
//! authorisation matrix, end-to-end tests over real TLS, OpenID Connect against a test identity
//! provider, and the command line. One binary, modules by area.

mod support;

mod api;
mod audit_trail;
mod cli_export;
mod cli_sql;
mod cli_store;
mod cli_view;
mod e2e;
mod exports;
mod inspect;
mod matrix;
mod oidc;
mod recordings;
mod viewer;
