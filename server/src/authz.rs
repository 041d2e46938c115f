//! The single authorisation decision point. Deny by default.
//!
//! Every handler that touches a protected resource calls [`authorize`] (through
//! [`crate::extract::Ctx::authorize`], which also audits the decision) with who asks
//! ([`Principal`]), what for ([`Action`]) and on what ([`Resource`]). The rules are the match
//! below and nowhere else:
//!
//! | role | may |
//! |---|---|
//! | administrator | accounts, grants, name exceptions, tenants, access review, incident register — no health data |
//! | technician | list, read and ingest recordings of their tenants (home tenant + tenant grants) |
//! | interpreter | read and annotate recordings assigned to them, in their own tenant |
//! | researcher | pseudonymised exports of their tenants |
//! | auditor | the audit trail, the access review and the incident register (read) |
//! | everyone | their own profile and credentials |
//!
//! Tenant isolation: a recording is always named with its tenant, and every recording rule checks
//! that tenant against the principal's, so no grant, however written, crosses tenants.

use std::collections::BTreeSet;

use serde::Serialize;

use theta_engine::audit::Reason;

use crate::accounts::Role;

/// Who is asking: built from the session at each request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// Account id.
    pub account_id: String,
    /// Username (for audit readability).
    pub username: String,
    /// Role.
    pub role: Role,
    /// Home tenant.
    pub tenant_id: Option<String>,
    /// Home tenant plus tenant grants.
    pub tenants: BTreeSet<String>,
    /// Recording assignments as (tenant, recording).
    pub recordings: BTreeSet<(String, String)>,
}

/// What the principal wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Action {
    /// Read one's own account.
    ReadSelf,
    /// Change one's own password or second factor.
    ManageOwnCredentials,
    /// List or read accounts.
    ReadAccounts,
    /// Create, enable, disable, change accounts.
    ManageAccounts,
    /// Give or withdraw grants.
    ManageGrants,
    /// Record exceptions to the generic-name rule.
    ManageNameExceptions,
    /// List or read tenants.
    ReadTenants,
    /// Create tenants.
    ManageTenants,
    /// Read the access review.
    ReadAccessReview,
    /// Read or export the audit trail.
    ReadAudit,
    /// List recordings of a tenant.
    ListRecordings,
    /// Read a recording (metadata, window, overview, PSD, annotations).
    ReadRecording,
    /// Upload (ingest) a recording into a tenant.
    IngestRecording,
    /// Create, edit or delete annotations of a recording.
    Annotate,
    /// Export pseudonymised data of a tenant.
    ExportPseudonymised,
    /// Read the security incident register.
    ReadIncidents,
    /// Change an incident's status or add to its timeline.
    ManageIncidents,
}

impl Action {
    /// Stable name (audit events, the matrix test).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::ReadSelf => "read_self",
            Action::ManageOwnCredentials => "manage_own_credentials",
            Action::ReadAccounts => "read_accounts",
            Action::ManageAccounts => "manage_accounts",
            Action::ManageGrants => "manage_grants",
            Action::ManageNameExceptions => "manage_name_exceptions",
            Action::ReadTenants => "read_tenants",
            Action::ManageTenants => "manage_tenants",
            Action::ReadAccessReview => "read_access_review",
            Action::ReadAudit => "read_audit",
            Action::ListRecordings => "list_recordings",
            Action::ReadRecording => "read_recording",
            Action::IngestRecording => "ingest_recording",
            Action::Annotate => "annotate",
            Action::ExportPseudonymised => "export_pseudonymised",
            Action::ReadIncidents => "read_incidents",
            Action::ManageIncidents => "manage_incidents",
        }
    }

    /// Reads are audited at decision time; changes are audited by the handler with their outcome.
    pub fn is_read(self) -> bool {
        matches!(
            self,
            Action::ReadAccounts
                | Action::ReadTenants
                | Action::ReadAccessReview
                | Action::ReadAudit
                | Action::ReadIncidents
                | Action::ListRecordings
                | Action::ReadRecording
        )
    }
}

/// On what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Resource {
    /// The platform as a whole (account lists, access review, audit trail).
    System,
    /// One account.
    Account {
        /// Account id.
        account_id: String,
    },
    /// One tenant (listing its recordings, ingesting into it, exporting from it).
    Tenant {
        /// Tenant id.
        tenant_id: String,
    },
    /// One recording, always with its owning tenant.
    Recording {
        /// Owning tenant.
        tenant_id: String,
        /// Recording id.
        recording_id: String,
    },
}

impl Resource {
    /// The tenant the resource belongs to, if any (audit events).
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Resource::Tenant { tenant_id } | Resource::Recording { tenant_id, .. } => {
                Some(tenant_id)
            }
            _ => None,
        }
    }

    /// Ids only, as `kind:id[/id]` (audit events).
    pub fn describe(&self) -> String {
        match self {
            Resource::System => "system".into(),
            Resource::Account { account_id } => format!("account:{account_id}"),
            Resource::Tenant { tenant_id } => format!("tenant:{tenant_id}"),
            Resource::Recording {
                tenant_id,
                recording_id,
            } => format!("recording:{tenant_id}/{recording_id}"),
        }
    }
}

/// A refusal: the reason code recorded in the audit trail, and the phrase sent to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("denied: {reason}")]
pub struct Denied {
    /// Why, as the audit trail's closed code (`tenant_mismatch`, `no_grant`, `insufficient_role`).
    pub code: Reason,
    /// Why, in words (sent to the client).
    pub reason: &'static str,
}

fn deny(code: Reason, reason: &'static str) -> Result<(), Denied> {
    Err(Denied { code, reason })
}

/// Decides. Anything not explicitly allowed below is denied.
///
/// # Errors
/// [`Denied`] with the reason.
pub fn authorize(p: &Principal, action: Action, resource: &Resource) -> Result<(), Denied> {
    use Action as A;
    use Resource as R;

    // Everyone may see and manage their own account's credentials, nobody else's this way.
    if matches!(action, A::ReadSelf | A::ManageOwnCredentials) {
        return match resource {
            R::Account { account_id } if *account_id == p.account_id => Ok(()),
            _ => deny(Reason::InsufficientRole, "only one's own account"),
        };
    }

    let in_tenant = |t: &str| p.tenants.contains(t);

    match p.role {
        Role::Administrator => match (action, resource) {
            (
                A::ReadAccounts | A::ManageAccounts | A::ManageGrants,
                R::System | R::Account { .. },
            ) => Ok(()),
            (
                A::ManageNameExceptions
                | A::ReadAccessReview
                | A::ManageTenants
                | A::ReadIncidents
                | A::ManageIncidents,
                R::System,
            ) => Ok(()),
            (A::ReadTenants, R::System | R::Tenant { .. }) => Ok(()),
            (
                A::ListRecordings
                | A::ReadRecording
                | A::IngestRecording
                | A::Annotate
                | A::ExportPseudonymised,
                _,
            ) => deny(
                Reason::InsufficientRole,
                "administrators have no access to health data",
            ),
            _ => deny(Reason::InsufficientRole, "not an administrative action"),
        },
        Role::Technician => match (action, resource) {
            (A::ListRecordings | A::IngestRecording | A::ReadTenants, R::Tenant { tenant_id }) => {
                if in_tenant(tenant_id) {
                    Ok(())
                } else {
                    deny(Reason::TenantMismatch, "other tenant")
                }
            }
            (A::ReadRecording, R::Recording { tenant_id, .. }) => {
                if in_tenant(tenant_id) {
                    Ok(())
                } else {
                    deny(Reason::TenantMismatch, "other tenant")
                }
            }
            (A::Annotate, _) => deny(Reason::InsufficientRole, "technicians do not annotate"),
            _ => deny(Reason::InsufficientRole, "not permitted to technicians"),
        },
        Role::Interpreter => match (action, resource) {
            (A::ListRecordings | A::ReadTenants, R::Tenant { tenant_id }) => {
                // The listing itself is filtered to the assignments by the handler.
                if in_tenant(tenant_id) {
                    Ok(())
                } else {
                    deny(Reason::TenantMismatch, "other tenant")
                }
            }
            (
                A::ReadRecording | A::Annotate,
                R::Recording {
                    tenant_id,
                    recording_id,
                },
            ) => {
                if !in_tenant(tenant_id) {
                    deny(Reason::TenantMismatch, "other tenant")
                } else if p
                    .recordings
                    .contains(&(tenant_id.clone(), recording_id.clone()))
                {
                    Ok(())
                } else {
                    deny(Reason::NoGrant, "recording not assigned")
                }
            }
            _ => deny(Reason::InsufficientRole, "not permitted to interpreters"),
        },
        Role::Researcher => match (action, resource) {
            (A::ExportPseudonymised | A::ReadTenants, R::Tenant { tenant_id }) => {
                if in_tenant(tenant_id) {
                    Ok(())
                } else {
                    deny(Reason::TenantMismatch, "other tenant")
                }
            }
            (A::ReadRecording | A::ListRecordings, _) => deny(
                Reason::InsufficientRole,
                "researchers see pseudonymised exports only",
            ),
            _ => deny(Reason::InsufficientRole, "not permitted to researchers"),
        },
        Role::Auditor => match (action, resource) {
            (A::ReadAudit | A::ReadAccessReview | A::ReadIncidents, R::System) => Ok(()),
            _ => deny(
                Reason::InsufficientRole,
                "auditors see the audit trail only",
            ),
        },
    }
}
