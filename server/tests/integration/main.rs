//! Integration tests of the service: component tests on the router (no socket), the
//! authorisation matrix, end-to-end tests over real TLS, and OpenID Connect against a test
//! identity provider. One binary, modules by area.

mod support;

mod api;
mod e2e;
mod matrix;
mod oidc;
