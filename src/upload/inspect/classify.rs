//! Reading the request `Content-Type` before the body streams
//! ([`classify`]): a `multipart/form-data` body with a valid boundary, or a
//! raw body that must be one allowed type ([`BodyKind`]).

use http::HeaderValue;

use super::part_headers::{parse_params, split_media_type};
use super::rules::UploadRules;
use super::violation::{refuse, Violation};
use crate::upload::types::FileType;

/// The longest multipart boundary accepted (RFC 2046).
pub const MAX_BOUNDARY_LEN: usize = 70;

/// How a request body must be inspected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyKind {
    /// A `multipart/form-data` body with this boundary.
    Multipart {
        /// The boundary parameter of the request `Content-Type`.
        boundary: String,
    },
    /// A raw body that must be this type.
    Raw(&'static FileType),
}

/// Decides from the request `Content-Type` how the body must be inspected.
///
/// `multipart/form-data` needs exactly one `boundary` parameter of 1 to 70
/// RFC 2046 boundary characters, else [`Violation::Malformed`]. Any other
/// media type (parameters ignored, case ignored) must be one of an allowed
/// type's media types, giving [`BodyKind::Raw`]; a type whose first listed
/// media type it is wins over one that lists it further down.
/// `application/octet-stream` is not accepted for raw bodies. Anything else,
/// or no `Content-Type`, is [`Violation::UnsupportedMediaType`].
pub fn classify(content_type: Option<&HeaderValue>, rules: &UploadRules) -> Result<BodyKind, Violation> {
    let Some(value) = content_type else {
        return Err(refuse(Violation::UnsupportedMediaType, "no content type"));
    };
    let Some((essence, params)) = split_media_type(value.as_bytes()) else {
        return Err(refuse(Violation::UnsupportedMediaType, "unparsable content type"));
    };
    if essence == "multipart/form-data" {
        let params = parse_params(params).map_err(|_| refuse(Violation::Malformed, "bad content type parameters"))?;
        let boundary = params
            .into_iter()
            .find(|(k, _)| k == "boundary")
            .map(|(_, v)| v)
            .ok_or_else(|| refuse(Violation::Malformed, "no boundary"))?;
        if !valid_boundary(&boundary) {
            return Err(refuse(Violation::Malformed, "invalid boundary"));
        }
        return Ok(BodyKind::Multipart { boundary });
    }
    rules
        .types
        .iter()
        .find(|t| t.media_types.first() == Some(&essence.as_str()))
        .or_else(|| rules.types.iter().find(|t| t.has_media_type(&essence)))
        .map(|t| BodyKind::Raw(t))
        .ok_or_else(|| refuse(Violation::UnsupportedMediaType, "raw type not allowed"))
}

/// RFC 2046: 1 to 70 characters from `bchars`, not ending in a space.
fn valid_boundary(b: &str) -> bool {
    !b.is_empty()
        && b.len() <= MAX_BOUNDARY_LEN
        && !b.ends_with(' ')
        && b.bytes().all(|c| c.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&c))
}

#[cfg(test)]
#[path = "tests/classify.rs"]
mod tests;
