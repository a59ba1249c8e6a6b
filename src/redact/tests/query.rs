//! Tests of query-string redaction.

use std::borrow::Cow;

use super::redact_query;

#[test]
fn query_redaction() {
    assert_eq!(redact_query("a=1&token=abc&x_api_key=zz&page=2"), "a=1&token=[redacted]&x_api_key=[redacted]&page=2");
    assert_eq!(
        redact_query("TOKEN=abc&Access_Token=t&Client-Secret=s&X-Amz-Signature=f00&sessionId=9"),
        "TOKEN=[redacted]&Access_Token=[redacted]&Client-Secret=[redacted]&X-Amz-Signature=[redacted]&sessionId=[redacted]"
    );
    assert_eq!(
        redact_query("code=xyz&state=ok&refresh_token=r&id_token=i&pwd=p&auth=a&credentials=c"),
        "code=[redacted]&state=ok&refresh_token=[redacted]&id_token=[redacted]&pwd=[redacted]&auth=[redacted]&credentials=[redacted]"
    );
    // Parameters without '=' or with an empty value stay as they are.
    let bare = "token&debug&password=&page=1";
    assert!(matches!(redact_query(bare), Cow::Borrowed(_)));
    assert_eq!(redact_query("flag&key=v"), "flag&key=[redacted]");
    // Percent-encoded names.
    assert_eq!(
        redact_query("%74oken=abc&x%5Fapi%5Fkey=zz&api%20key=k&q=a%20b"),
        "%74oken=[redacted]&x%5Fapi%5Fkey=[redacted]&api%20key=[redacted]&q=a%20b"
    );
    // Names that only contain a keyword inside a word are kept.
    for clean in ["keyword=rust&monkey=1&design=x&author=me", "", "a=1&b=2", "sort=asc&postcode=1"] {
        let out = redact_query(clean);
        assert!(matches!(out, Cow::Borrowed(_)), "{clean} -> {out}");
    }
}
