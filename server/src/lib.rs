//! The `theta` service and command line: HTTPS API, accounts, MFA, OIDC, roles, tenants, audit,
//! incidents, the web viewer and the CLI sub-commands.
#![forbid(unsafe_code)]

pub mod cli;
