//! The admin API's request checks and its wire form of an entry.
#![allow(clippy::unwrap_used)]

use super::{LoggedValue, from_pb, pb, selector_of, to_pb};
use crate::revocation::{Entry, Selector};

fn request(selector: pb::revoke_request::Selector, before: Option<i64>) -> pb::RevokeRequest {
    pb::RevokeRequest {
        selector: Some(selector),
        issued_before: before,
        reason: String::new(),
    }
}

#[test]
fn a_request_names_exactly_one_selector_and_before_only_with_sub() {
    use pb::revoke_request::Selector as S;
    assert_eq!(
        selector_of(&request(S::Sub("alice".into()), Some(5))).unwrap(),
        Selector::Sub {
            sub: "alice".into(),
            before: Some(5)
        }
    );
    assert!(selector_of(&pb::RevokeRequest::default()).is_err());
    let e = selector_of(&request(S::Jti("j".into()), Some(5))).unwrap_err();
    assert!(e.contains("issued_before"), "{e}");
    let by_token = selector_of(&request(S::SessionToken("tok.sig".into()), None)).unwrap();
    let hash = by_token.value();
    let by_hash = selector_of(&request(S::SessionSha256(hash.to_uppercase()), None)).unwrap();
    assert_eq!(by_token, by_hash);
    assert!(selector_of(&request(S::SessionSha256("abc".into()), None)).is_err());
    assert!(selector_of(&request(S::SessionToken(String::new()), None)).is_err());
}

#[test]
fn entries_cross_the_wire_unchanged() {
    for selector in [
        Selector::Sub {
            sub: "a".into(),
            before: Some(9),
        },
        Selector::Jti("j".into()),
        Selector::Sid("s".into()),
        Selector::session_token("t").unwrap(),
    ] {
        let e = Entry {
            id: "1-2".into(),
            selector,
            created_at: 10,
            expires_at: 20,
            reason: "r".into(),
        };
        assert_eq!(from_pb(to_pb(&e)), Some(e));
    }
}

#[test]
fn a_session_is_logged_as_a_short_tag_only() {
    let s = Selector::session_token("secret-session-token").unwrap();
    let logged = LoggedValue(&s).to_string();
    assert_eq!(logged.len(), 12);
    assert!(s.value().starts_with(&logged));
    assert_eq!(LoggedValue(&Selector::Jti("j-1".into())).to_string(), "j-1");
}
