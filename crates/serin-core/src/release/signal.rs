//! Signals: single observations about one lane of a release.
//!
//! Applications, workers and SDKs report what they see — a request's outcome, a
//! latency, a counter, a gauge — tagged with the lane (`stable` or `canary`) that
//! produced it. The judges compare lanes from these. A signal names its release
//! either by id or by product name and version (the original CanaryPy form).
//!
//! Validation is strict about meaning, because a judge fed nonsense gives nonsense:
//! an outcome is 0 (failure) or 1 (success), a latency or counter is never negative,
//! and a timestamp may not lie more than [`MAX_CLOCK_SKEW_SECS`] in the future of the
//! server's clock (passed in as `now`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::release::validate_version;
pub use crate::validate::{MAX_CLOCK_SKEW_SECS, MIN_TIMESTAMP_SECS, validate_instant};
use crate::validate::{validate_name, validate_text};
use crate::{DomainError, Timestamp};

/// Most signals in one batch.
pub const MAX_BATCH: usize = 50_000;
/// Most tags on one signal.
pub const MAX_TAGS: usize = 32;
/// Longest signal name or tag key.
pub const MAX_SIGNAL_NAME_LEN: usize = 200;
/// Longest tag value.
pub const MAX_TAG_VALUE_LEN: usize = 256;

pub use crate::traffic::Lane;

/// What a signal's value means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    /// A success (1) or failure (0) of one request or job.
    Outcome,
    /// A duration in milliseconds.
    Latency,
    /// A count of events since the last report (never negative).
    Counter,
    /// A level at the timestamp (any finite number).
    #[default]
    Gauge,
}

impl SignalKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SignalKind::Outcome => "outcome",
            SignalKind::Latency => "latency",
            SignalKind::Counter => "counter",
            SignalKind::Gauge => "gauge",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<SignalKind> {
        [
            SignalKind::Outcome,
            SignalKind::Latency,
            SignalKind::Counter,
            SignalKind::Gauge,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// A stored signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Signal {
    /// Stable numeric identifier.
    pub id: i64,
    /// The release observed.
    pub release_id: i64,
    /// The release's product.
    pub product_name: String,
    /// The release's version.
    pub version: String,
    /// The lane that produced the observation.
    pub lane: Lane,
    /// What was observed, e.g. `http.request`, `checkout.completed`.
    pub name: String,
    /// What the value means.
    pub kind: SignalKind,
    /// The observed value.
    pub value: f64,
    /// Free-form labels.
    pub tags: BTreeMap<String, String>,
    /// When it was observed.
    pub timestamp: DateTime<Utc>,
}

/// What a client sends to record a signal (also the body of `POST /signal`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewSignal {
    /// The release, by id. Give this or `product_name` and `version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_id: Option<i64>,
    /// The release's product (with `version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    /// The release's version (with `product_name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The lane that produced the observation.
    pub lane: Lane,
    /// What was observed: 1–200 characters of `A-Z a-z 0-9 _ . : -`.
    pub name: String,
    /// The observed value; must suit `kind`.
    pub value: f64,
    /// What the value means; `gauge` when absent.
    #[serde(default)]
    pub kind: SignalKind,
    /// Free-form labels (at most 32).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// When it was observed; the server's time when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
}

/// How a new signal names its release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReleaseRef<'a> {
    /// By id.
    Id(i64),
    /// By product name and version.
    Named {
        /// The product's name.
        product_name: &'a str,
        /// The version.
        version: &'a str,
    },
}

impl NewSignal {
    /// Checks the fields against the rules in the module docs.
    pub fn validate(&self, now: Timestamp) -> Result<(), DomainError> {
        self.release_ref()?;
        validate_signal_name("name", &self.name)?;
        validate_value(self.kind, self.value)?;
        if self.tags.len() > MAX_TAGS {
            return Err(DomainError::invalid(
                "tags",
                format!("at most {MAX_TAGS} tags"),
            ));
        }
        for (k, v) in &self.tags {
            validate_signal_name(&format!("tags.{k}"), k)?;
            if v.len() > MAX_TAG_VALUE_LEN {
                return Err(DomainError::invalid(
                    format!("tags.{k}"),
                    format!("a tag value is at most {MAX_TAG_VALUE_LEN} bytes"),
                ));
            }
            validate_text(&format!("tags.{k}"), v)?;
        }
        if let Some(ts) = self.timestamp {
            validate_instant("timestamp", ts)?;
        }
        if let Some(ts) = self.timestamp
            && (ts - now).num_seconds() > MAX_CLOCK_SKEW_SECS
        {
            return Err(DomainError::invalid(
                "timestamp",
                format!(
                    "is more than {MAX_CLOCK_SKEW_SECS}s ahead of the server's clock ({})",
                    now.to_rfc3339()
                ),
            ));
        }
        Ok(())
    }

    /// How this signal names its release; an error if it names it neither or both ways.
    pub fn release_ref(&self) -> Result<ReleaseRef<'_>, DomainError> {
        match (
            self.release_id,
            self.product_name.as_deref(),
            self.version.as_deref(),
        ) {
            (Some(id), None, None) => Ok(ReleaseRef::Id(id)),
            (None, Some(p), Some(v)) => {
                validate_name("product_name", p)?;
                validate_version("version", v)?;
                Ok(ReleaseRef::Named {
                    product_name: p,
                    version: v,
                })
            }
            (None, None, Some(_)) => Err(DomainError::invalid(
                "product_name",
                "is required with `version`",
            )),
            (None, Some(_), None) => Err(DomainError::invalid(
                "version",
                "is required with `product_name`",
            )),
            (None, None, None) => Err(DomainError::invalid(
                "product_name",
                "name the release: give `product_name` and `version`, or `release_id`",
            )),
            (Some(_), _, _) => Err(DomainError::invalid(
                "release_id",
                "give either `release_id` or `product_name` and `version`, not both",
            )),
        }
    }
}

/// Checks a value against what its kind means.
pub fn validate_value(kind: SignalKind, value: f64) -> Result<(), DomainError> {
    if !value.is_finite() {
        return Err(DomainError::invalid("value", "must be a finite number"));
    }
    match kind {
        SignalKind::Outcome if value != 0.0 && value != 1.0 => Err(DomainError::invalid(
            "value",
            "an outcome is 1 (success) or 0 (failure)",
        )),
        SignalKind::Latency | SignalKind::Counter if value < 0.0 => Err(DomainError::invalid(
            "value",
            format!("a {} is never negative", kind.as_str()),
        )),
        _ => Ok(()),
    }
}

/// An observation of one lane of a canary deployment, reported straight to the
/// deployment (by an application, an SDK, or a proxy) rather than to a release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LaneSignal {
    /// The lane observed.
    pub lane: Lane,
    /// What was observed, e.g. `http.request`.
    pub name: String,
    /// What the value means; `gauge` when absent. Outcomes and latencies feed the
    /// deployment's metrics and health; gauges named `queue_depth` and
    /// `dead_letters` fill those figures.
    #[serde(default)]
    pub kind: SignalKind,
    /// The value.
    pub value: f64,
    /// When (now when absent).
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
}

impl LaneSignal {
    /// Checks the fields.
    pub fn validate(&self, now: Timestamp) -> Result<(), DomainError> {
        validate_signal_name("name", &self.name)?;
        validate_value(self.kind, self.value)?;
        if let Some(ts) = self.timestamp {
            validate_instant("timestamp", ts)?;
            if (ts - now).num_seconds() > MAX_CLOCK_SKEW_SECS {
                return Err(DomainError::invalid("timestamp", "is in the future"));
            }
        }
        Ok(())
    }
}

/// Checks a signal name or tag key.
pub fn validate_signal_name(field: &str, name: &str) -> Result<(), DomainError> {
    if name.is_empty() || name.len() > MAX_SIGNAL_NAME_LEN {
        return Err(DomainError::invalid(
            field,
            format!("must be 1 to {MAX_SIGNAL_NAME_LEN} characters"),
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
    {
        return Err(DomainError::invalid(
            field,
            "must contain only letters, digits, '_', '.', ':' and '-'",
        ));
    }
    Ok(())
}

/// Many signals at once; stored all together or not at all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignalBatch {
    /// The signals (1 to 50,000).
    pub signals: Vec<NewSignal>,
}

impl SignalBatch {
    /// Checks every signal; an error names the first bad one as `signals[i].field`.
    pub fn validate(&self, now: Timestamp) -> Result<(), DomainError> {
        if self.signals.is_empty() {
            return Err(DomainError::invalid(
                "signals",
                "must hold at least one signal",
            ));
        }
        if self.signals.len() > MAX_BATCH {
            return Err(DomainError::invalid(
                "signals",
                format!("at most {MAX_BATCH} signals per batch"),
            ));
        }
        for (i, s) in self.signals.iter().enumerate() {
            s.validate(now)
                .map_err(|e| e.under(&format!("signals[{i}]")))?;
        }
        Ok(())
    }
}

/// The answer to a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchAccepted {
    /// How many signals were stored.
    pub accepted: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone, Utc};

    fn now() -> Timestamp {
        Utc.timestamp_opt(1_700_000_000, 0).unwrap()
    }

    fn sig() -> NewSignal {
        NewSignal {
            release_id: None,
            product_name: Some("web".into()),
            version: Some("1.0.0".into()),
            lane: Lane::Canary,
            name: "http.request".into(),
            value: 1.0,
            kind: SignalKind::Outcome,
            tags: BTreeMap::new(),
            timestamp: None,
        }
    }

    fn field_of(e: DomainError) -> String {
        match e {
            DomainError::Invalid { field, .. } => field,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn valid_signal_passes() {
        sig().validate(now()).unwrap();
    }

    #[test]
    fn outcome_must_be_zero_or_one() {
        let s = NewSignal {
            value: 0.5,
            ..sig()
        };
        assert_eq!(field_of(s.validate(now()).unwrap_err()), "value");
    }

    #[test]
    fn negative_latency_rejected() {
        let s = NewSignal {
            kind: SignalKind::Latency,
            value: -3.0,
            ..sig()
        };
        assert_eq!(field_of(s.validate(now()).unwrap_err()), "value");
        let g = NewSignal {
            kind: SignalKind::Gauge,
            value: -3.0,
            ..sig()
        };
        g.validate(now()).unwrap();
    }

    #[test]
    fn release_must_be_named_one_way() {
        let s = NewSignal {
            release_id: Some(4),
            ..sig()
        };
        assert_eq!(field_of(s.validate(now()).unwrap_err()), "release_id");
        let s = NewSignal {
            version: None,
            ..sig()
        };
        assert_eq!(field_of(s.validate(now()).unwrap_err()), "version");
        let s = NewSignal {
            product_name: None,
            version: None,
            release_id: Some(4),
            ..sig()
        };
        s.validate(now()).unwrap();
    }

    #[test]
    fn future_timestamps_bounded() {
        let s = NewSignal {
            timestamp: Some(now() + Duration::seconds(600)),
            ..sig()
        };
        assert_eq!(field_of(s.validate(now()).unwrap_err()), "timestamp");
        let s = NewSignal {
            timestamp: Some(now() + Duration::seconds(60)),
            ..sig()
        };
        s.validate(now()).unwrap();
    }

    #[test]
    fn ancient_timestamps_and_control_characters_refused() {
        let s = NewSignal {
            timestamp: Some("-5000-01-01T00:00:00Z".parse().unwrap()),
            ..sig()
        };
        assert_eq!(field_of(s.validate(now()).unwrap_err()), "timestamp");
        let mut s = sig();
        s.tags.insert("k".into(), "v\0".into());
        assert_eq!(field_of(s.validate(now()).unwrap_err()), "tags.k");
    }

    #[test]
    fn batch_errors_name_the_index() {
        let mut bad = sig();
        bad.name = "has space".into();
        let b = SignalBatch {
            signals: vec![sig(), sig(), bad],
        };
        assert_eq!(field_of(b.validate(now()).unwrap_err()), "signals[2].name");
        let empty = SignalBatch { signals: vec![] };
        assert_eq!(field_of(empty.validate(now()).unwrap_err()), "signals");
    }

    #[test]
    fn kind_defaults_to_gauge() {
        let s: NewSignal = serde_json::from_str(
            r#"{"product_name":"a","version":"1","lane":"stable","name":"x","value":3}"#,
        )
        .unwrap();
        assert_eq!(s.kind, SignalKind::Gauge);
    }
}
