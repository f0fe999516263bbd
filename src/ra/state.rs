//! Statuses derived from stored facts, as pure functions.
//!
//! Nothing here touches the store or the clock: callers pass `now`. Each
//! rule cites the part of RFC 8555 it follows.

use crate::model::{AttemptState, Authz, AuthzState, ChallengeType, Order, Timestamp};

/// Authorization status (RFC 8555 §7.1.6, figure 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthzStatus {
    Pending,
    Valid,
    Invalid,
    Deactivated,
    Expired,
    Revoked,
}

impl AuthzStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AuthzStatus::Pending => "pending",
            AuthzStatus::Valid => "valid",
            AuthzStatus::Invalid => "invalid",
            AuthzStatus::Deactivated => "deactivated",
            AuthzStatus::Expired => "expired",
            AuthzStatus::Revoked => "revoked",
        }
    }
}

/// Challenge status (RFC 8555 §7.1.6, figure 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChallengeStatus {
    Pending,
    Processing,
    Valid,
    Invalid,
}

impl ChallengeStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ChallengeStatus::Pending => "pending",
            ChallengeStatus::Processing => "processing",
            ChallengeStatus::Valid => "valid",
            ChallengeStatus::Invalid => "invalid",
        }
    }
}

/// Order status (RFC 8555 §7.1.6, figure 10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OrderStatus {
    Pending,
    Ready,
    Processing,
    Valid,
    Invalid,
}

impl OrderStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Ready => "ready",
            OrderStatus::Processing => "processing",
            OrderStatus::Valid => "valid",
            OrderStatus::Invalid => "invalid",
        }
    }
}

/// The status of an authorization at `now`.
///
/// Deactivated and revoked are final whatever the time. Otherwise an
/// authorization past its `expires` is expired (§7.1.6: "pending → expired",
/// "valid → expired"), including one that was invalid, which stays invalid.
pub(crate) fn authz_status(authz: &Authz, now: Timestamp) -> AuthzStatus {
    match authz.state {
        AuthzState::Deactivated => AuthzStatus::Deactivated,
        AuthzState::Revoked => AuthzStatus::Revoked,
        AuthzState::Invalid => AuthzStatus::Invalid,
        _ if now >= authz.expires => AuthzStatus::Expired,
        AuthzState::Valid => AuthzStatus::Valid,
        AuthzState::Pending => AuthzStatus::Pending,
    }
}

/// The status of challenge `kind` of an authorization.
///
/// The attempted challenge carries the attempt's state (§7.1.6: pending →
/// processing → valid/invalid). The others stay pending, as RFC 8555 §7.1.4
/// allows: only one challenge needs to succeed.
pub(crate) fn challenge_status(authz: &Authz, kind: ChallengeType) -> ChallengeStatus {
    match &authz.attempt {
        Some(a) if a.kind == kind => match a.state {
            AttemptState::Processing => ChallengeStatus::Processing,
            AttemptState::Valid => ChallengeStatus::Valid,
            AttemptState::Invalid => ChallengeStatus::Invalid,
        },
        _ => ChallengeStatus::Pending,
    }
}

/// The status of an order at `now`, from the order row and its
/// authorizations (§7.1.6 and §7.4).
///
/// - A certificate was issued: valid (§7.4: "valid: the server has issued
///   the certificate").
/// - An error was recorded, or any authorization is invalid, deactivated,
///   expired or revoked: invalid (§7.1.6: "if any authorization fails ...
///   the order becomes invalid").
/// - The order itself expired: invalid (§7.1.3 `expires`).
/// - A finalize holds the order's lease: processing.
/// - All authorizations valid: ready; else pending.
pub(crate) fn order_status(order: &Order, authzs: &[Authz], now: Timestamp) -> OrderStatus {
    if order.cert_id.is_some() {
        return OrderStatus::Valid;
    }
    if order.error.is_some() {
        return OrderStatus::Invalid;
    }
    let mut all_valid = true;
    for a in authzs {
        match authz_status(a, now) {
            AuthzStatus::Valid => {}
            AuthzStatus::Pending => all_valid = false,
            AuthzStatus::Invalid
            | AuthzStatus::Deactivated
            | AuthzStatus::Expired
            | AuthzStatus::Revoked => return OrderStatus::Invalid,
        }
    }
    if now >= order.expires {
        return OrderStatus::Invalid;
    }
    if order.processing_until.is_some_and(|until| now < until) {
        return OrderStatus::Processing;
    }
    if all_valid && !authzs.is_empty() {
        OrderStatus::Ready
    } else {
        OrderStatus::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AccountId, Attempt, AuthzId, CertId, OrderId};
    use crate::protocol::Identifier;

    fn authz(state: AuthzState, expires: Timestamp) -> Authz {
        Authz {
            id: AuthzId("a".into()),
            account_id: AccountId("acct".into()),
            identifier: Identifier::dns("example.com"),
            wildcard: false,
            state,
            expires,
            token: "tok".into(),
            offered: ChallengeType::ALL.to_vec(),
            attempt: None,
            created_at: 0,
        }
    }

    fn order(expires: Timestamp) -> Order {
        Order {
            id: OrderId("o".into()),
            account_id: AccountId("acct".into()),
            identifiers: vec![Identifier::dns("example.com")],
            authz_ids: vec![AuthzId("a".into())],
            expires,
            not_before: None,
            not_after: None,
            processing_until: None,
            cert_id: None,
            error: None,
            created_at: 0,
            profile: "classic".into(),
            replaces: None,
        }
    }

    #[test]
    fn authz_status_table() {
        use AuthzState as S;
        use AuthzStatus as T;
        let cases = [
            (S::Pending, 100, 50, T::Pending),
            (S::Pending, 100, 100, T::Expired),
            (S::Valid, 100, 50, T::Valid),
            (S::Valid, 100, 150, T::Expired),
            (S::Invalid, 100, 50, T::Invalid),
            (S::Invalid, 100, 150, T::Invalid),
            (S::Deactivated, 100, 150, T::Deactivated),
            (S::Revoked, 100, 50, T::Revoked),
        ];
        for (state, expires, now, want) in cases {
            assert_eq!(
                authz_status(&authz(state, expires), now),
                want,
                "{state:?} expires {expires} now {now}"
            );
        }
    }

    #[test]
    fn challenge_status_follows_the_attempt() {
        let mut a = authz(AuthzState::Pending, 100);
        assert_eq!(
            challenge_status(&a, ChallengeType::Http01),
            ChallengeStatus::Pending
        );
        a.attempt = Some(Attempt {
            kind: ChallengeType::Http01,
            state: AttemptState::Processing,
            started_at: 1,
            validated_at: None,
            error: None,
            records: None,
        });
        assert_eq!(
            challenge_status(&a, ChallengeType::Http01),
            ChallengeStatus::Processing
        );
        assert_eq!(
            challenge_status(&a, ChallengeType::Dns01),
            ChallengeStatus::Pending
        );
        a.attempt.as_mut().unwrap().state = AttemptState::Invalid;
        assert_eq!(
            challenge_status(&a, ChallengeType::Http01),
            ChallengeStatus::Invalid
        );
        a.attempt.as_mut().unwrap().state = AttemptState::Valid;
        assert_eq!(
            challenge_status(&a, ChallengeType::Http01),
            ChallengeStatus::Valid
        );
    }

    #[test]
    fn order_status_table() {
        use AuthzState as S;
        use OrderStatus as O;
        // (authz states, order expires, lease until, has cert, has error, now, expected)
        type Case<'a> = (&'a [S], i64, Option<i64>, bool, bool, i64, O);
        let cases: &[Case] = &[
            (&[S::Pending], 100, None, false, false, 10, O::Pending),
            (
                &[S::Valid, S::Pending],
                100,
                None,
                false,
                false,
                10,
                O::Pending,
            ),
            (&[S::Valid, S::Valid], 100, None, false, false, 10, O::Ready),
            (
                &[S::Valid, S::Invalid],
                100,
                None,
                false,
                false,
                10,
                O::Invalid,
            ),
            (
                &[S::Valid, S::Deactivated],
                100,
                None,
                false,
                false,
                10,
                O::Invalid,
            ),
            (&[S::Revoked], 100, None, false, false, 10, O::Invalid),
            // order expired before it was finalized
            (&[S::Valid], 100, None, false, false, 100, O::Invalid),
            // lease held: processing; lease over (crash mid-issuance): ready again
            (&[S::Valid], 100, Some(20), false, false, 10, O::Processing),
            (&[S::Valid], 100, Some(20), false, false, 20, O::Ready),
            // certificate issued: valid, even after every expiry
            (&[S::Valid], 100, None, true, false, 10, O::Valid),
            (&[S::Valid], 100, None, true, false, 10_000, O::Valid),
            // recorded error
            (&[S::Valid], 100, None, false, true, 10, O::Invalid),
        ];
        for (i, (states, expires, lease, cert, error, now, want)) in cases.iter().enumerate() {
            let authzs: Vec<Authz> = states.iter().map(|s| authz(*s, 1_000)).collect();
            let mut o = order(*expires);
            o.processing_until = *lease;
            o.cert_id = cert.then(|| CertId("c".into()));
            o.error = error.then(|| serde_json::json!({"type": "x"}));
            assert_eq!(order_status(&o, &authzs, *now), *want, "case {i}");
        }
    }

    #[test]
    fn expired_authorization_makes_the_order_invalid() {
        let o = order(1_000);
        let a = [authz(AuthzState::Valid, 50)];
        assert_eq!(order_status(&o, &a, 49), OrderStatus::Ready);
        assert_eq!(order_status(&o, &a, 50), OrderStatus::Invalid);
    }
}
