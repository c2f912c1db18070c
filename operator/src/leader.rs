//! Leader election through a coordination.k8s.io Lease, so the chart can run two replicas and
//! only one reconciles. The decision is a pure function; the loop around it talks to the API.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

/// Seconds a lease stays valid without renewal.
pub const LEASE_SECONDS: i32 = 15;
/// How often the holder renews and a standby looks.
pub const RENEW_EVERY: Duration = Duration::from_secs(5);

/// What to do about a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// We hold it: renew.
    Renew,
    /// Nobody holds a valid one: take it.
    Acquire,
    /// Someone else holds a valid one: wait.
    Wait,
}

/// Decides, for holder `me` at `now`, what to do about `spec`.
pub fn decide(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> Decision {
    let Some(spec) = spec else {
        return Decision::Acquire;
    };
    if spec.holder_identity.as_deref() == Some(me) {
        return Decision::Renew;
    }
    let valid_until =
        spec.renew_time.as_ref().map(|t| {
            t.0 + Duration::from_secs(
                spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS).max(0) as u64
            )
        });
    match valid_until {
        Some(until) if until > now && spec.holder_identity.is_some() => Decision::Wait,
        _ => Decision::Acquire,
    }
}

fn spec_for(me: &str, now: Timestamp, old: Option<&LeaseSpec>) -> LeaseSpec {
    let taken = old.is_none_or(|s| s.holder_identity.as_deref() != Some(me));
    LeaseSpec {
        holder_identity: Some(me.into()),
        lease_duration_seconds: Some(LEASE_SECONDS),
        renew_time: Some(MicroTime(now)),
        acquire_time: if taken {
            Some(MicroTime(now))
        } else {
            old.and_then(|s| s.acquire_time.clone())
        },
        lease_transitions: old.map(|s| s.lease_transitions.unwrap_or(0) + i32::from(taken)),
        ..LeaseSpec::default()
    }
}

/// One round: returns whether `me` holds the lease afterwards. Writes use the lease's
/// resourceVersion, so two replicas racing for it cannot both win.
pub async fn round(api: &Api<Lease>, name: &str, me: &str) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let current = api.get_opt(name).await?;
    let decision = decide(current.as_ref().and_then(|l| l.spec.as_ref()), me, now);
    if decision == Decision::Wait {
        return Ok(false);
    }
    let result = match current {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    ..ObjectMeta::default()
                },
                spec: Some(spec_for(me, now, None)),
            };
            api.create(&PostParams::default(), &lease).await
        }
        Some(mut lease) => {
            lease.spec = Some(spec_for(me, now, lease.spec.as_ref()));
            api.replace(name, &PostParams::default(), &lease).await
        }
    };
    match result {
        Ok(_) => Ok(true),
        // Someone else wrote first.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Waits until `me` holds the lease, then keeps renewing it in the background; the returned
/// future resolves if the lease is lost (the caller should then exit, as client-go does).
pub async fn acquire(
    client: Client,
    namespace: &str,
    name: &str,
    me: &str,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let api: Api<Lease> = Api::namespaced(client, namespace);
    loop {
        match round(&api, name, me).await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => tracing::warn!("lease {namespace}/{name}: {e}"),
        }
        tokio::time::sleep(RENEW_EVERY).await;
    }
    tracing::info!("leading as {me} (lease {namespace}/{name})");
    let (name, me) = (name.to_string(), me.to_string());
    Ok(tokio::spawn(async move {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            match round(&api, &name, &me).await {
                Ok(true) => last_ok = tokio::time::Instant::now(),
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!("renewing lease {name}: {e}");
                    if last_ok.elapsed() > Duration::from_secs(LEASE_SECONDS as u64) {
                        return;
                    }
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(by: &str, renewed: Timestamp) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(by.into()),
            renew_time: Some(MicroTime(renewed)),
            lease_duration_seconds: Some(LEASE_SECONDS),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_valid_lease_of_another_replica_is_waited_for_and_an_expired_one_taken() {
        let now = Timestamp::now();
        assert_eq!(decide(None, "a", now), Decision::Acquire);
        assert_eq!(decide(Some(&held("a", now)), "a", now), Decision::Renew);
        assert_eq!(decide(Some(&held("b", now)), "a", now), Decision::Wait);
        let stale = now - Duration::from_secs(LEASE_SECONDS as u64 + 1);
        assert_eq!(decide(Some(&held("b", stale)), "a", now), Decision::Acquire);
        let taken = spec_for("a", now, Some(&held("b", stale)));
        assert_eq!(taken.lease_transitions, Some(1));
        assert_eq!(taken.holder_identity.as_deref(), Some("a"));
    }
}
