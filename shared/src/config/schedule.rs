//! When a destination is due: a named cadence or a five-field cron expression, matched against
//! a run's minute (UTC). The deployed schedules fire at the finest grain any destination uses
//! ([`firing_expression`]); at each firing the dump step plans only the destinations due then.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::layout::RunId;

/// A destination's schedule, as written in the config.
///
/// - `"hourly"`: minute 0 of every hour;
/// - `"twice-daily"`: 04:00 and 15:00 UTC (the template's default firings; Dreamdata's cadence);
/// - `"daily"`: 04:00 UTC;
/// - five-field cron, UTC: `minute hour day-of-month month day-of-week`, each `*`, a number,
///   a range `a-b`, a step `*/n` or `a-b/n`, or a list of those (`0 */6 * * 1-5`); `?` reads as
///   `*`; day-of-week 0-7 (0 and 7 are Sunday). With both day fields restricted, a day matching
///   either is due (as in cron).
#[derive(Clone, PartialEq, Eq)]
pub struct Schedule {
    text: String,
    cron: Cron,
}

impl Schedule {
    /// Parses a schedule; the message says what is allowed.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let expression = match text {
            "hourly" => "0 * * * *",
            "twice-daily" => "0 4,15 * * *",
            "daily" => "0 4 * * *",
            other => other,
        };
        let cron = Cron::parse(expression).map_err(|e| {
            format!(
                "{text:?} is not a schedule: {e}; use \"hourly\", \"twice-daily\", \"daily\" or five-field cron (UTC), e.g. \"30 */6 * * *\""
            )
        })?;
        Ok(Schedule { text: text.to_owned(), cron })
    }

    /// Whether a run at `run`'s minute includes this destination.
    pub fn is_due(&self, run: RunId) -> bool {
        let t = run.datetime();
        use chrono::{Datelike, Timelike};
        let dow = t.weekday().num_days_from_sunday();
        self.cron.minute.has(t.minute())
            && self.cron.hour.has(t.hour())
            && self.cron.month.has(t.month())
            && match (self.cron.dom_any, self.cron.dow_any) {
                (true, true) => true,
                (false, true) => self.cron.dom.has(t.day()),
                (true, false) => self.cron.dow.has(dow),
                (false, false) => self.cron.dom.has(t.day()) || self.cron.dow.has(dow),
            }
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?})", self.text)
    }
}

impl Serialize for Schedule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Schedule::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The EventBridge Scheduler expression that fires at every minute some schedule is due (the
/// union of their minutes and hours, every day), or `None` when no destination has a schedule.
/// Day restrictions are left to the dump step, which plans only the destinations due.
pub fn firing_expression<'a>(schedules: impl IntoIterator<Item = &'a Schedule>) -> Option<String> {
    let mut minutes = 0u64;
    let mut hours = 0u64;
    let mut any = false;
    for s in schedules {
        any = true;
        minutes |= s.cron.minute.0;
        hours |= s.cron.hour.0;
    }
    any.then(|| format!("cron({} {} * * ? *)", list(minutes, 60), list(hours, 24)))
}

fn list(bits: u64, all: u32) -> String {
    let set: Vec<u32> = (0..all).filter(|i| bits & (1 << i) != 0).collect();
    if set.len() == all as usize { "*".into() } else { set.iter().map(u32::to_string).collect::<Vec<_>>().join(",") }
}

/// A parsed five-field cron expression: one bit per allowed value.
#[derive(Clone, PartialEq, Eq)]
struct Cron {
    minute: Bits,
    hour: Bits,
    dom: Bits,
    month: Bits,
    dow: Bits,
    dom_any: bool,
    dow_any: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Bits(u64);

impl Bits {
    fn has(self, v: u32) -> bool {
        v < 64 && self.0 & (1 << v) != 0
    }
}

impl Cron {
    fn parse(text: &str) -> Result<Cron, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = fields[..] else {
            return Err(format!("{} fields, not 5", fields.len()));
        };
        let mut dow_bits = field(dow, "day-of-week", 0, 7)?;
        if dow_bits.has(7) {
            dow_bits.0 |= 1; // 7 is Sunday too
        }
        Ok(Cron {
            minute: field(minute, "minute", 0, 59)?,
            hour: field(hour, "hour", 0, 23)?,
            dom: field(dom, "day-of-month", 1, 31)?,
            month: field(month, "month", 1, 12)?,
            dow: dow_bits,
            dom_any: matches!(dom, "*" | "?"),
            dow_any: matches!(dow, "*" | "?"),
        })
    }
}

fn field(text: &str, name: &str, min: u32, max: u32) -> Result<Bits, String> {
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u32 =
                    step.parse().ok().filter(|s| *s > 0).ok_or_else(|| format!("{name}: bad step in {part:?}"))?;
                (range, step)
            }
            None => (part, 1),
        };
        let number = |s: &str| -> Result<u32, String> {
            s.parse::<u32>()
                .ok()
                .filter(|v| (min..=max).contains(v))
                .ok_or_else(|| format!("{name}: {s:?} is not a number in {min}-{max}"))
        };
        let (from, to) = match range {
            "*" | "?" => (min, max),
            r => match r.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None if step > 1 => (number(r)?, max),
                None => (number(r)?, number(r)?),
            },
        };
        if from > to {
            return Err(format!("{name}: range {range:?} runs backwards"));
        }
        for v in (from..=to).step_by(step as usize) {
            bits |= 1 << v;
        }
    }
    Ok(Bits(bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> RunId {
        text.parse().expect("run id")
    }

    #[test]
    fn named_cadences() {
        let hourly = Schedule::parse("hourly").expect("hourly");
        let twice = Schedule::parse("twice-daily").expect("twice");
        let daily = Schedule::parse("daily").expect("daily");
        assert!(hourly.is_due(at("2026-11-30T13:00")) && !hourly.is_due(at("2026-11-30T13:30")));
        assert!(twice.is_due(at("2026-11-30T04:00")) && twice.is_due(at("2026-11-30T15:00")));
        assert!(!twice.is_due(at("2026-11-30T05:00")));
        assert!(daily.is_due(at("2026-11-30T04:00")) && !daily.is_due(at("2026-11-30T15:00")));
    }

    #[test]
    fn cron_fields_ranges_steps_lists_and_days() {
        let s = Schedule::parse("30 */6 * * 1-5").expect("cron");
        assert!(s.is_due(at("2026-11-30T06:30"))); // a Monday
        assert!(!s.is_due(at("2026-11-29T06:30"))); // a Sunday
        assert!(!s.is_due(at("2026-11-30T07:30")));
        // Both day fields restricted: either matches.
        let s = Schedule::parse("0 0 1 * 0").expect("cron");
        assert!(s.is_due(at("2026-12-01T00:00"))); // the 1st, a Tuesday
        assert!(s.is_due(at("2026-11-29T00:00"))); // a Sunday
        assert!(!s.is_due(at("2026-11-30T00:00")));
        assert!(Schedule::parse("0 0 * * 7").expect("sunday").is_due(at("2026-11-29T00:00")));
        assert!(Schedule::parse("0 0 ? * ?").expect("question marks").is_due(at("2026-11-29T00:00")));
    }

    #[test]
    fn bad_schedules_say_what_is_allowed() {
        for (bad, words) in [
            ("weekly", "5"),
            ("60 * * * *", "minute"),
            ("0 24 * * *", "hour"),
            ("0 0 0 * *", "day-of-month"),
            ("0 0 * 13 *", "month"),
            ("0 0 * * 8", "day-of-week"),
            ("*/0 * * * *", "step"),
            ("0 5-1 * * *", "backwards"),
        ] {
            let e = Schedule::parse(bad).expect_err(bad);
            assert!(e.contains(words) && e.contains("twice-daily"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_firing_expression_covers_every_schedule() {
        let parse = |s: &str| Schedule::parse(s).expect(s);
        assert_eq!(firing_expression(&[parse("twice-daily"), parse("daily")]), Some("cron(0 4,15 * * ? *)".into()));
        assert_eq!(firing_expression(&[parse("twice-daily"), parse("hourly")]), Some("cron(0 * * * ? *)".into()));
        assert_eq!(
            firing_expression(&[parse("30 */6 * * 1-5"), parse("daily")]),
            Some("cron(0,30 0,4,6,12,18 * * ? *)".into())
        );
        assert_eq!(firing_expression(&[]), None);
    }
}
