//! The shared harness itself: echo upstream and HTTP client agree.

use crate::common;

#[test]
fn echo_upstream_reflects_headers() {
    let up = common::EchoUpstream::start();
    let r = common::http_request(up.addr, "GET", "/x?y=1", &[("x-test", "a b")]).expect("answer");
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["path"], "/x?y=1");
    assert_eq!(j["headers"]["x-test"][0], "a b");
    assert_eq!(up.hits(), 1);
}
