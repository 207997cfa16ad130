//! Query-string parsing that names the parameter at fault. Unknown parameters are refused so a
//! typo (`form=` for `from=`) does not silently return a different page.

use std::collections::BTreeMap;

use crate::error::{ApiError, ApiResult};

pub struct Params {
    values: BTreeMap<String, Vec<String>>,
}

/// The longest query string accepted (bytes).
pub const QUERY_BYTES_MAX: usize = 8 * 1024;
/// The most values one list parameter may carry.
pub const LIST_VALUES_MAX: usize = 100;

impl Params {
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> ApiResult<Params> {
        let raw = raw.unwrap_or("");
        if raw.len() > QUERY_BYTES_MAX {
            return Err(ApiError::bad_param("query", format!("query string longer than {QUERY_BYTES_MAX} bytes")));
        }
        let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
            if !allowed.contains(&k.as_ref()) {
                return Err(ApiError::bad_param(&k, format!("unknown parameter {k:?}; allowed: {}", allowed.join(", "))));
            }
            values.entry(k.into_owned()).or_default().push(v.into_owned());
        }
        Ok(Params { values })
    }

    /// A parameter given at most once; empty counts as absent.
    pub fn one(&self, name: &str) -> ApiResult<Option<&str>> {
        match self.values.get(name).map(Vec::as_slice) {
            None => Ok(None),
            Some([v]) => Ok(if v.is_empty() { None } else { Some(v.as_str()) }),
            Some(_) => Err(ApiError::bad_param(name, format!("{name} may be given only once"))),
        }
    }

    pub fn parse_one<T>(&self, name: &str, f: impl Fn(&str) -> Result<T, String>) -> ApiResult<Option<T>> {
        match self.one(name)? {
            None => Ok(None),
            Some(v) => f(v).map(Some).map_err(|why| ApiError::bad_param(name, why)),
        }
    }

    /// Repeated (`kind=a&kind=b`) or comma-separated (`kind=a,b`) values.
    pub fn list<T>(&self, name: &str, f: impl Fn(&str) -> Result<T, String>) -> ApiResult<Vec<T>> {
        let mut out = Vec::new();
        for v in self.values.get(name).into_iter().flatten() {
            for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                if out.len() >= LIST_VALUES_MAX {
                    return Err(ApiError::bad_param(name, format!("at most {LIST_VALUES_MAX} values")));
                }
                out.push(f(part).map_err(|why| ApiError::bad_param(name, why))?);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_parameter_at_fault() {
        let e = Params::parse(Some("form=2026-01-01"), &["from", "to"]).err().unwrap();
        assert_eq!(e.param.as_deref(), Some("form"));
        let p = Params::parse(Some("kind=purchase,void&kind=refund&to="), &["kind", "to"]).unwrap();
        assert_eq!(p.list("kind", |s| Ok::<_, String>(s.to_owned())).unwrap(), ["purchase", "void", "refund"]);
        assert_eq!(p.one("to").unwrap(), None);
        let p = Params::parse(Some("to=1&to=2"), &["to"]).unwrap();
        assert_eq!(p.one("to").err().unwrap().param.as_deref(), Some("to"));
    }
}
