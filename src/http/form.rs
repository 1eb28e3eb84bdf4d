//! Decoded query parameters and form bodies
//! (`application/x-www-form-urlencoded`): name and value pairs, in order,
//! with `+` and percent-escapes decoded, by the `form_urlencoded` crate
//! (the WHATWG URL Standard's parser, from rust-url).
//!
//! Decoding never fails: an escape that is not one (`%zz`, a `%` at the
//! end) is kept as sent, and bytes that do not make UTF-8 become U+FFFD,
//! as browsers do.

use std::borrow::Cow;
use std::io;

use super::request::Request;

/// The name and value pairs of `input`, an `application/x-www-form-urlencoded`
/// string (a query, or a form's body): split at `&`, each pair at its first
/// `=` (a pair without one has an empty value), `+` decoded as a space and
/// `%XX` as the byte it names. Empty pairs (`a=1&&b=2`) are skipped;
/// repeated names are kept, in order. A pair borrows from `input` when it
/// had nothing to decode.
///
/// ```
/// use graceful_server::http::form_pairs;
///
/// let pairs: Vec<_> = form_pairs(b"q=rust+http&tag=a%2Bb&tag=%zz&flag").collect();
/// assert_eq!(pairs, [
///     ("q".into(), "rust http".into()),
///     ("tag".into(), "a+b".into()),
///     ("tag".into(), "%zz".into()), // not an escape: kept as sent
///     ("flag".into(), "".into()),
/// ]);
/// ```
pub fn form_pairs(input: &[u8]) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> + '_ {
    form_urlencoded::parse(input)
}

impl Request<'_> {
    /// The query's name and value pairs, decoded, in order (see
    /// [`form_pairs`]); none if the target has no query.
    ///
    /// ```
    /// use graceful_server::http::{Request, Response};
    ///
    /// // GET /search?q=caf%C3%A9+au+lait&page=2
    /// fn search(req: &mut Request) -> Response {
    ///     let mut words = None;
    ///     let mut page = 1;
    ///     for (name, value) in req.query_pairs() {
    ///         match &*name {
    ///             "q" => words = Some(value.into_owned()),
    ///             "page" => page = value.parse().unwrap_or(1),
    ///             _ => {} // unknown parameters are ignored
    ///         }
    ///     }
    ///     match words {
    ///         Some(words) => Response::text(format!("page {page} of {words:?}")),
    ///         None => Response::text("q is missing\n").with_status(400),
    ///     }
    /// }
    /// # let _ = graceful_server::http::handler(search);
    /// ```
    pub fn query_pairs(&self) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> + '_ {
        form_pairs(self.query().unwrap_or("").as_bytes())
    }

    /// The decoded value of the query's first parameter called `name`
    /// (decoded too, and matched exactly), if there is one.
    ///
    /// ```
    /// use graceful_server::http::{Request, Response};
    ///
    /// // GET /hello?name=Ada+Lovelace
    /// fn hello(req: &mut Request) -> Response {
    ///     let name = req.query_param("name").unwrap_or("stranger".into());
    ///     Response::text(format!("Hello, {name}!"))
    /// }
    /// # let _ = graceful_server::http::handler(hello);
    /// ```
    pub fn query_param(&self, name: &str) -> Option<Cow<'_, str>> {
        self.query_pairs()
            .find(|(candidate, _)| candidate == name)
            .map(|(_, value)| value)
    }

    /// Reads the body (at most [`max_body`](super::Limits::max_body) bytes,
    /// as [`read_body`](Self::read_body)) and decodes it as a form: its
    /// name and value pairs, in order (see [`form_pairs`]).
    ///
    /// # Errors
    ///
    /// The request's `Content-Type` is not `application/x-www-form-urlencoded`
    /// (with any parameters, in any case; a missing one too): an error of
    /// kind [`InvalidInput`](io::ErrorKind::InvalidInput), and the body is
    /// not read (answer `415 Unsupported Media Type`, say). Otherwise as
    /// [`read_body`](Self::read_body): the layer then answers `400`, `408`
    /// or `413` itself.
    ///
    /// ```
    /// use graceful_server::http::{Request, Response};
    ///
    /// // POST /login with the body user=ada&password=%C2%A3%24
    /// fn login(req: &mut Request) -> Response {
    ///     let form = match req.read_form() {
    ///         Ok(form) => form,
    ///         Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => return Response::new(415),
    ///         Err(_) => return Response::new(400), // the layer answers 400/408/413 itself
    ///     };
    ///     let user = form.iter().find(|(name, _)| name == "user").map(|(_, v)| v.as_str());
    ///     Response::text(format!("hello {}", user.unwrap_or("nobody")))
    /// }
    /// # let _ = graceful_server::http::handler(login);
    /// ```
    pub fn read_form(&mut self) -> io::Result<Vec<(String, String)>> {
        if !self.header("content-type").is_some_and(is_form) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the request body is not application/x-www-form-urlencoded",
            ));
        }
        let body = self.read_body()?;
        Ok(form_pairs(&body)
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect())
    }
}

/// Whether a `Content-Type` value names a form: its media type, before any
/// parameters, is `application/x-www-form-urlencoded` in any case.
fn is_form(content_type: &str) -> bool {
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(input: &str) -> Vec<(String, String)> {
        form_pairs(input.as_bytes())
            .map(|(n, v)| (n.into_owned(), v.into_owned()))
            .collect()
    }

    fn pair(name: &str, value: &str) -> (String, String) {
        (name.to_string(), value.to_string())
    }

    #[test]
    fn decoding_edge_cases() {
        assert_eq!(pairs("a+b=c+d"), [pair("a b", "c d")]);
        assert_eq!(
            pairs("plus=%2B&space=%20"),
            [pair("plus", "+"), pair("space", " ")]
        );
        assert_eq!(
            pairs("x=%e2%82%ac"),
            [pair("x", "\u{20ac}")],
            "lower-case hex"
        );
        assert_eq!(
            pairs("bad=%zz&end=%&half=%4"),
            [pair("bad", "%zz"), pair("end", "%"), pair("half", "%4")]
        );
        assert_eq!(
            pairs("x=%FF%FE"),
            [pair("x", "\u{fffd}\u{fffd}")],
            "not UTF-8"
        );
        assert_eq!(
            pairs("&&a=1&&a=2&"),
            [pair("a", "1"), pair("a", "2")],
            "empty pairs skipped, repeats kept in order"
        );
        assert_eq!(pairs("flag"), [pair("flag", "")]);
        assert_eq!(pairs("=v"), [pair("", "v")]);
        assert_eq!(pairs("a=1=2"), [pair("a", "1=2")]);
        assert_eq!(
            pairs("a%3Db=c%26d"),
            [pair("a=b", "c&d")],
            "escaped separators"
        );
        assert_eq!(pairs(""), []);
        assert_eq!(pairs("nul=%00"), [pair("nul", "\0")]);
    }

    #[test]
    fn form_content_types() {
        assert!(is_form("application/x-www-form-urlencoded"));
        assert!(is_form("Application/X-WWW-Form-Urlencoded; charset=UTF-8"));
        assert!(is_form(" application/x-www-form-urlencoded ;x=y"));
        assert!(!is_form("multipart/form-data; boundary=x"));
        assert!(!is_form("application/json"));
        assert!(!is_form(""));
    }
}
