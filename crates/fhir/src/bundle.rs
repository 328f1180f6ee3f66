//! Bundles: a search's page with its links, a patient's whole record.

use crate::resources::{Bundle, BundleEntry, BundleEntrySearch, BundleLink, Resource};
use crate::search::Paging;

/// Percent-encodes a query component (RFC 3986: everything but the unreserved characters).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The URL of one page of a search: the same parameters with this page's `_offset`.
pub fn page_url(
    base: &str,
    path: &str,
    params: &[(String, String)],
    paging: &Paging,
    offset: u32,
) -> String {
    let mut url = format!("{base}/{path}?");
    let mut first = true;
    for (k, v) in params
        .iter()
        .filter(|(k, _)| k != "_offset" && k != "_count")
    {
        if !first {
            url.push('&');
        }
        first = false;
        url.push_str(&encode(k));
        url.push('=');
        url.push_str(&encode(v));
    }
    if !first {
        url.push('&');
    }
    url.push_str(&format!("_count={}&_offset={offset}", paging.count));
    url
}

/// An entry for `resource` at `{base}/{Type}/{id}`.
pub fn entry(base: &str, resource: Resource, mode: Option<&str>) -> BundleEntry {
    BundleEntry {
        full_url: resource.local_reference().map(|r| format!("{base}/{r}")),
        resource: Some(resource),
        search: mode.map(|m| BundleEntrySearch {
            mode: Some(m.to_owned()),
        }),
        request: None,
        response: None,
    }
}

/// One page of a search: its matches, what `_include` brought, `total` across every page,
/// and `self`, `previous` and `next` links.
pub fn searchset(
    base: &str,
    path: &str,
    params: &[(String, String)],
    paging: &Paging,
    total: u64,
    matches: Vec<Resource>,
    included: Vec<Resource>,
) -> Bundle {
    let mut link = vec![BundleLink {
        relation: "self".into(),
        url: page_url(base, path, params, paging, paging.offset),
    }];
    if paging.offset > 0 {
        link.push(BundleLink {
            relation: "previous".into(),
            url: page_url(
                base,
                path,
                params,
                paging,
                paging.offset.saturating_sub(paging.count),
            ),
        });
    }
    if paging.count > 0 && u64::from(paging.offset) + u64::from(paging.count) < total {
        link.push(BundleLink {
            relation: "next".into(),
            url: page_url(base, path, params, paging, paging.offset + paging.count),
        });
    }
    let entry = matches
        .into_iter()
        .map(|r| entry(base, r, Some("match")))
        .chain(
            included
                .into_iter()
                .map(|r| entry(base, r, Some("include"))),
        )
        .collect();
    Bundle {
        id: None,
        meta: None,
        r#type: "searchset".into(),
        timestamp: None,
        total: Some(total),
        link,
        entry,
    }
}

/// A patient's whole record (`$everything`): a searchset of every resource, in the order given.
pub fn whole_record(base: &str, id: String, timestamp: String, resources: Vec<Resource>) -> Bundle {
    Bundle {
        id: Some(id),
        meta: None,
        r#type: "searchset".into(),
        timestamp: Some(timestamp),
        total: Some(resources.len() as u64),
        link: Vec::new(),
        entry: resources
            .into_iter()
            .map(|r| entry(base, r, Some("match")))
            .collect(),
    }
}

/// A patient's whole record as a `collection` to keep or move (a transfer to another
/// hospital): every resource, in the order given, with no search semantics.
pub fn collection(base: &str, id: String, timestamp: String, resources: Vec<Resource>) -> Bundle {
    Bundle {
        id: Some(id),
        meta: None,
        r#type: "collection".into(),
        timestamp: Some(timestamp),
        total: None,
        link: Vec::new(),
        entry: resources
            .into_iter()
            .map(|r| entry(base, r, None))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_carry_the_parameters_and_page_on() {
        let params = vec![
            ("name".to_owned(), "van der".to_owned()),
            ("_offset".to_owned(), "2".to_owned()),
        ];
        let paging = Paging {
            count: 2,
            offset: 2,
        };
        let b = searchset(
            "http://n/fhir/R4",
            "Patient",
            &params,
            &paging,
            5,
            Vec::new(),
            Vec::new(),
        );
        let rel = |r: &str| {
            b.link
                .iter()
                .find(|l| l.relation == r)
                .map(|l| l.url.clone())
        };
        assert_eq!(
            rel("self").as_deref(),
            Some("http://n/fhir/R4/Patient?name=van%20der&_count=2&_offset=2")
        );
        assert_eq!(
            rel("previous").as_deref(),
            Some("http://n/fhir/R4/Patient?name=van%20der&_count=2&_offset=0")
        );
        assert_eq!(
            rel("next").as_deref(),
            Some("http://n/fhir/R4/Patient?name=van%20der&_count=2&_offset=4")
        );
        let last = searchset(
            "b",
            "Patient",
            &[],
            &Paging {
                count: 10,
                offset: 0,
            },
            3,
            Vec::new(),
            Vec::new(),
        );
        assert!(
            last.link
                .iter()
                .all(|l| l.relation != "next" && l.relation != "previous")
        );
    }
}
