//! `stats`: mergeable dataset statistics: exact distributions, label balance, fine-tuning cost (exact,
//! or estimated from a sample) and sequence packing.
//!
//! Everything here merges: per-thread or per-file parts combine into the same result as one pass over
//! all records.

use std::collections::BTreeMap;

use crate::error::Error;

/// All values of a quantity (tokens per record, ...), for exact order statistics.
///
/// Values are kept as `u32`; larger values saturate at `u32::MAX` (a record that large would not fit
/// under any line-length limit).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Distribution {
    values: Vec<u32>,
    sum: u64,
}

/// Order statistics of a [`Distribution`].
///
/// Percentiles are nearest-rank: the `p`-th percentile of `n` sorted values `v[1..=n]` is `v[k]` with
/// `k = max(1, ceil(p * n / 100))`, the smallest value with at least `p` percent of the values at or
/// below it; it is always one of the values. These are true 5th and 95th percentiles (OpenAI's
/// cookbook prints the 10th and 90th under the names p5 and p95).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub sum: u64,
    pub min: u64,
    pub max: u64,
    /// `sum / count`.
    pub mean: f64,
    pub p5: u64,
    pub p50: u64,
    pub p95: u64,
}

impl Distribution {
    pub fn new() -> Distribution {
        Distribution::default()
    }

    pub fn push(&mut self, value: u64) {
        let value = u32::try_from(value).unwrap_or(u32::MAX);
        self.values.push(value);
        self.sum += u64::from(value);
    }

    /// Adds all the values of `other`.
    pub fn merge(&mut self, other: &Distribution) {
        self.values.extend_from_slice(&other.values);
        self.sum += other.sum;
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The values, in no particular order.
    pub fn values(&self) -> &[u32] {
        &self.values
    }

    /// The summary of the values, `None` when there are none. Sorts the values in place.
    pub fn summary(&mut self) -> Option<Summary> {
        if self.values.is_empty() {
            return None;
        }
        self.values.sort_unstable();
        let v = &self.values;
        let count = v.len() as u64;
        Some(Summary {
            count,
            sum: self.sum,
            min: u64::from(v[0]),
            max: u64::from(v[v.len() - 1]),
            mean: self.sum as f64 / count as f64,
            p5: nearest_rank(v, 5),
            p50: nearest_rank(v, 50),
            p95: nearest_rank(v, 95),
        })
    }
}

/// The `percent`-th percentile of non-empty `sorted` values by nearest rank (see [`Summary`]).
fn nearest_rank(sorted: &[u32], percent: u64) -> u64 {
    let n = sorted.len() as u64;
    let rank = (percent * n).div_ceil(100).max(1);
    u64::from(sorted[(rank - 1) as usize])
}

/// At most this many distinct labels make a classification dataset.
pub const MAX_CLASSES: usize = 50;
/// A label longer than this many characters is free text, not a class.
pub const MAX_LABEL_CHARS: usize = 64;
/// At least this percentage of records must have a label for a classification dataset.
pub const MIN_LABELED_PERCENT: u64 = 95;
/// A class balance with a larger [`LabelBalance::imbalance_ratio`] is imbalanced.
pub const IMBALANCE_THRESHOLD: f64 = 1.5;

/// How often each label (the target text of a record) occurs, to tell whether a dataset is a
/// classification task and whether its classes are balanced.
///
/// The dataset counts as classification ([`LabelBalance::is_classification`]) when all of these hold:
/// - there are 2 to [`MAX_CLASSES`] distinct labels, each at most [`MAX_LABEL_CHARS`] characters;
/// - at least [`MIN_LABELED_PERCENT`] percent of the records have a label;
/// - there are at least twice as many labeled records as distinct labels (so that labels repeat).
///
/// Labels are compared exactly (`"Yes"` and `"yes "` are two labels). Once a label is too long or
/// there are too many distinct labels, the counts are dropped: memory stays bounded on free-text data.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LabelBalance {
    counts: BTreeMap<String, u64>,
    /// Too many or too long labels were seen: `counts` is empty and stays so.
    free_text: bool,
    labeled: u64,
    unlabeled: u64,
}

impl LabelBalance {
    pub fn new() -> LabelBalance {
        LabelBalance::default()
    }

    /// Counts one record, with its label if it has one.
    pub fn add(&mut self, label: Option<&str>) {
        match label {
            None => self.unlabeled += 1,
            Some(label) => {
                self.labeled += 1;
                self.count(label, 1);
            }
        }
    }

    /// Adds the records counted by `other`.
    pub fn merge(&mut self, other: &LabelBalance) {
        self.labeled += other.labeled;
        self.unlabeled += other.unlabeled;
        if other.free_text {
            self.give_up();
        }
        for (label, &n) in &other.counts {
            self.count(label, n);
        }
    }

    fn count(&mut self, label: &str, n: u64) {
        if self.free_text {
            return;
        }
        if let Some(count) = self.counts.get_mut(label) {
            *count += n;
        } else if self.counts.len() == MAX_CLASSES || label.chars().nth(MAX_LABEL_CHARS).is_some() {
            self.give_up();
        } else {
            self.counts.insert(label.to_string(), n);
        }
    }

    fn give_up(&mut self) {
        self.free_text = true;
        self.counts = BTreeMap::new();
    }

    /// Records with a label.
    pub fn labeled(&self) -> u64 {
        self.labeled
    }

    /// Records without a label.
    pub fn unlabeled(&self) -> u64 {
        self.unlabeled
    }

    /// By the rule documented on [`LabelBalance`].
    pub fn is_classification(&self) -> bool {
        let distinct = self.counts.len() as u64;
        let records = self.labeled + self.unlabeled;
        !self.free_text
            && distinct >= 2
            && self.labeled >= 2 * distinct
            && self.labeled * 100 >= MIN_LABELED_PERCENT * records
    }

    /// Each label and its count, most frequent first (ties by label), when the dataset is a
    /// classification dataset.
    pub fn classes(&self) -> Option<Vec<(&str, u64)>> {
        if !self.is_classification() {
            return None;
        }
        let mut classes: Vec<(&str, u64)> =
            self.counts.iter().map(|(label, &n)| (label.as_str(), n)).collect();
        classes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        Some(classes)
    }

    /// `max count / min count` over the classes, when the dataset is a classification dataset.
    pub fn imbalance_ratio(&self) -> Option<f64> {
        if !self.is_classification() {
            return None;
        }
        let max = self.counts.values().max()?;
        let min = self.counts.values().min()?;
        Some(*max as f64 / *min as f64)
    }

    /// Whether [`LabelBalance::imbalance_ratio`] is over [`IMBALANCE_THRESHOLD`].
    pub fn is_imbalanced(&self) -> bool {
        self.imbalance_ratio().is_some_and(|ratio| ratio > IMBALANCE_THRESHOLD)
    }
}

/// The number of epochs OpenAI aims for by default.
pub const TARGET_EPOCHS: u64 = 3;
/// The default epochs give at least this many example passes where the epoch cap allows...
pub const MIN_TARGET_EXAMPLES: u64 = 100;
/// ... and at most this many where at least one epoch does.
pub const MAX_TARGET_EXAMPLES: u64 = 25_000;
pub const MIN_DEFAULT_EPOCHS: u64 = 1;
pub const MAX_DEFAULT_EPOCHS: u64 = 25;

/// The number of epochs OpenAI's fine-tuning picks by default for `n` examples, by the heuristic of
/// its data-preparation cookbook (integer division, as there):
/// - `n * 3 < 100`: `min(25, 100 / n)` (so 4 examples or fewer give 25 epochs, 30 give 3);
/// - `n * 3 > 25000`: `max(1, 25000 / n)`;
/// - otherwise 3.
///
/// The result is always within 1..=25; `n = 0` gives 25, the limit of the first rule.
pub fn default_epochs(n: u64) -> u64 {
    if n == 0 {
        MAX_DEFAULT_EPOCHS
    } else if n.saturating_mul(TARGET_EPOCHS) < MIN_TARGET_EXAMPLES {
        MAX_DEFAULT_EPOCHS.min(MIN_TARGET_EXAMPLES / n)
    } else if n.saturating_mul(TARGET_EPOCHS) > MAX_TARGET_EXAMPLES {
        MIN_DEFAULT_EPOCHS.max(MAX_TARGET_EXAMPLES / n)
    } else {
        TARGET_EPOCHS
    }
}

/// The tokens billed for one epoch: `sum(min(limit, tokens))` over the examples, since an example
/// longer than the model's context `limit` is truncated to it.
pub fn billed_tokens_per_epoch(tokens: impl IntoIterator<Item = u64>, limit: u64) -> u64 {
    tokens.into_iter().map(|t| t.min(limit)).sum()
}

/// The cost of a fine-tuning job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cost {
    pub epochs: u64,
    pub billed_tokens_per_epoch: u64,
    /// `billed_tokens_per_epoch * epochs`.
    pub charged_tokens: u64,
}

impl Cost {
    pub fn new(billed_tokens_per_epoch: u64, epochs: u64) -> Cost {
        Cost {
            epochs,
            billed_tokens_per_epoch,
            charged_tokens: billed_tokens_per_epoch.saturating_mul(epochs),
        }
    }

    /// `charged_tokens / 1e6 * usd_per_million_tokens`.
    pub fn usd(&self, usd_per_million_tokens: f64) -> f64 {
        self.charged_tokens as f64 / 1e6 * usd_per_million_tokens
    }
}

/// The two-sided 95% quantile of the standard normal distribution.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// An estimate with its 95% confidence interval `[low, high]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    pub value: f64,
    pub std_error: f64,
    pub low: f64,
    pub high: f64,
}

impl Estimate {
    /// The estimate of `factor` times the quantity (factor >= 0), e.g. charged tokens
    /// (`factor = epochs`) or dollars (`factor = epochs * usd_per_million / 1e6`).
    pub fn scale(&self, factor: f64) -> Estimate {
        Estimate {
            value: self.value * factor,
            std_error: self.std_error * factor,
            low: self.low * factor,
            high: self.high * factor,
        }
    }
}

/// Estimates the total of a quantity over `population` records from its values on a simple random
/// sample of them (drawn without replacement), e.g. the tokens of a fraction of a file's lines, or
/// their billed tokens (`min(limit, tokens)`) to estimate the billed total.
///
/// With `n` sampled values of mean `m` and sample variance `s² = sum((x - m)²) / (n - 1)`, and
/// `N = population` (taken as at least `n`):
/// - estimate `N * m`;
/// - standard error `N * sqrt((1 - n / N) * s² / n)` (with the finite population correction, so a
///   sample of every record gives the exact total and a zero error);
/// - interval `estimate ± Z_95 * standard error` (normal approximation), with `low` raised to the
///   sample's own sum when below it, since the total is at least what was seen.
///
/// `None` for an empty sample, or a single value out of more records (its variance is unknown).
pub fn estimate_total(sample: &[u64], population: u64) -> Option<Estimate> {
    let n = sample.len() as u64;
    let population = population.max(n);
    if n == 0 || (n == 1 && population > 1) {
        return None;
    }
    let sum: u64 = sample.iter().sum();
    let (n_f, population_f) = (n as f64, population as f64);
    let mean = sum as f64 / n_f;
    let variance = if n > 1 {
        sample.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / (n_f - 1.0)
    } else {
        0.0
    };
    let fpc = 1.0 - n_f / population_f;
    let std_error = population_f * (fpc * variance / n_f).sqrt();
    let value = population_f * mean;
    Some(Estimate {
        value,
        std_error,
        low: (value - Z_95 * std_error).max(sum as f64),
        high: value + Z_95 * std_error,
    })
}

/// Examples laid out in training sequences of a fixed length `L`.
///
/// Every sequence is padded to `L`; an example longer than `L` is truncated to `L` (its tail is lost,
/// not carried into another sequence). `tokens` is the sum of the truncated lengths, and
/// `padding_tokens = sequences * L - tokens`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packing {
    pub sequences: u64,
    pub tokens: u64,
    pub padding_tokens: u64,
    /// Examples longer than `L`.
    pub truncated_examples: u64,
}

impl Packing {
    /// `100 * padding_tokens / (sequences * L)`; 0 with no sequences.
    pub fn padding_waste_percent(&self) -> f64 {
        let capacity = self.tokens + self.padding_tokens;
        if capacity == 0 {
            0.0
        } else {
            100.0 * self.padding_tokens as f64 / capacity as f64
        }
    }

    fn new(lengths: &[u32], max_len: u32, sequences: u64) -> Packing {
        let tokens: u64 = lengths.iter().map(|&l| u64::from(l.min(max_len))).sum();
        Packing {
            sequences,
            tokens,
            padding_tokens: sequences * u64::from(max_len) - tokens,
            truncated_examples: lengths.iter().filter(|&&l| l > max_len).count() as u64,
        }
    }
}

fn check_max_len(max_len: u32) -> Result<(), Error> {
    if max_len == 0 {
        return Err(Error::InvalidInput("the sequence length for packing must be positive".into()));
    }
    Ok(())
}

/// One sequence per example (see [`Packing`]).
pub fn pack_none(lengths: &[u32], max_len: u32) -> Result<Packing, Error> {
    check_max_len(max_len)?;
    Ok(Packing::new(lengths, max_len, lengths.len() as u64))
}

/// Examples packed into sequences by first-fit decreasing: in order of decreasing (truncated) length,
/// each example goes into the first sequence with room for it, or starts a new one. Examples are not
/// split. O(n log n) for `n` examples (see [`Packing`]).
pub fn pack_ffd(lengths: &[u32], max_len: u32) -> Result<Packing, Error> {
    check_max_len(max_len)?;
    let bins = ffd_loads(lengths, max_len).len() as u64;
    Ok(Packing::new(lengths, max_len, bins))
}

/// The load of each sequence after first-fit decreasing, in the order the sequences were opened.
///
/// First fit is a max segment tree over the remaining room of the sequences, unopened ones included
/// (with room `max_len`): the first sequence with room for an example is found by walking down from
/// the root, always left when the left subtree has room. First fit leaves at most one sequence at
/// most half full (two such would have been merged), so with `S` the total length there are at most
/// `2 * ceil(S / max_len) + 1` sequences, and the tree needs no more leaves than that.
fn ffd_loads(lengths: &[u32], max_len: u32) -> Vec<u64> {
    let mut sizes: Vec<u32> = lengths.iter().map(|&l| l.min(max_len)).collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    let total: u64 = sizes.iter().map(|&s| u64::from(s)).sum();
    let bound = (2 * total.div_ceil(u64::from(max_len)) + 1).min(sizes.len() as u64) as usize;
    let leaves = bound.max(1).next_power_of_two();
    // room[1] is the root; the children of i are 2i and 2i + 1; leaf b is room[leaves + b].
    let mut room = vec![max_len; 2 * leaves];
    let mut opened = 0;
    for &size in &sizes {
        let mut i = 1;
        while i < leaves {
            i = if room[2 * i] >= size { 2 * i } else { 2 * i + 1 };
        }
        opened = opened.max(i - leaves + 1);
        room[i] -= size;
        while i > 1 {
            i /= 2;
            room[i] = room[2 * i].max(room[2 * i + 1]);
        }
    }
    room[leaves..leaves + opened].iter().map(|&r| u64::from(max_len - r)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift64*), for random inputs without a dependency.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
        }
    }

    fn distribution(values: &[u64]) -> Distribution {
        let mut d = Distribution::new();
        values.iter().for_each(|&v| d.push(v));
        d
    }

    #[test]
    fn summary_is_exact_with_nearest_rank_percentiles() {
        assert_eq!(Distribution::new().summary(), None);
        let s = distribution(&[7]).summary().unwrap();
        assert_eq!((s.count, s.min, s.max, s.mean, s.p5, s.p50, s.p95), (1, 7, 7, 7.0, 7, 7, 7));
        // 1..=100 in reverse: the p-th percentile by nearest rank is p itself.
        let mut d = distribution(&(1..=100).rev().collect::<Vec<_>>());
        let s = d.summary().unwrap();
        assert_eq!((s.count, s.sum, s.min, s.max, s.mean), (100, 5050, 1, 100, 50.5));
        assert_eq!((s.p5, s.p50, s.p95), (5, 50, 95));
        // 1..=20: ranks ceil(1) = 1, ceil(10) = 10, ceil(19) = 19.
        let s = distribution(&(1..=20).map(|v| v * 10).collect::<Vec<_>>()).summary().unwrap();
        assert_eq!((s.p5, s.p50, s.p95), (10, 100, 190));
        // 1..=10: ranks ceil(0.5) = 1, ceil(5) = 5, ceil(9.5) = 10.
        let s = distribution(&(1..=10).collect::<Vec<_>>()).summary().unwrap();
        assert_eq!((s.p5, s.p50, s.p95), (1, 5, 10));
        // Values past u32 saturate.
        assert_eq!(distribution(&[u64::MAX]).summary().unwrap().max, u64::from(u32::MAX));
    }

    #[test]
    fn merged_distributions_equal_one_pass() {
        let mut rng = Rng(42);
        let values: Vec<u64> = (0..1000).map(|_| rng.below(5000)).collect();
        let mut whole = distribution(&values);
        let (a, b) = values.split_at(377);
        let mut merged = distribution(a);
        merged.merge(&distribution(b));
        merged.merge(&Distribution::new());
        assert_eq!(merged.len(), 1000);
        assert_eq!(merged.summary(), whole.summary());
        let mut sorted = values.clone();
        sorted.sort_unstable();
        let s = whole.summary().unwrap();
        assert_eq!(
            (s.min, s.max, s.p5, s.p50, s.p95),
            (sorted[0], sorted[999], sorted[49], sorted[499], sorted[949])
        );
        assert_eq!(s.sum, values.iter().sum::<u64>());
    }

    fn balance(labels: &[(&str, u64)], unlabeled: u64) -> LabelBalance {
        let mut b = LabelBalance::new();
        for &(label, n) in labels {
            (0..n).for_each(|_| b.add(Some(label)));
        }
        (0..unlabeled).for_each(|_| b.add(None));
        b
    }

    #[test]
    fn classification_is_detected_by_the_documented_rule() {
        let b = balance(&[("positive", 60), ("negative", 40)], 0);
        assert!(b.is_classification());
        assert_eq!(b.classes().unwrap(), [("positive", 60), ("negative", 40)]);
        assert_eq!(b.imbalance_ratio(), Some(1.5));
        assert!(!b.is_imbalanced());
        let b = balance(&[("a", 61), ("b", 40), ("c", 50)], 0);
        assert_eq!(b.imbalance_ratio(), Some(61.0 / 40.0));
        assert!(b.is_imbalanced());
        // One class only.
        assert!(!balance(&[("yes", 10)], 0).is_classification());
        // Labels that do not repeat: 3 labels need 6 labeled records.
        assert!(!balance(&[("a", 1), ("b", 1), ("c", 3)], 0).is_classification());
        assert!(balance(&[("a", 1), ("b", 1), ("c", 4)], 0).is_classification());
        // 95% of the records must be labeled.
        assert!(balance(&[("a", 10), ("b", 9)], 1).is_classification());
        assert!(!balance(&[("a", 10), ("b", 9)], 2).is_classification());
        // Long labels are free text.
        let long = "x".repeat(MAX_LABEL_CHARS + 1);
        let b = balance(&[("a", 10), ("b", 10), (&long, 1)], 0);
        assert_eq!((b.is_classification(), b.classes(), b.imbalance_ratio()), (false, None, None));
        assert_eq!(b.labeled(), 21);
        let at_limit = "é".repeat(MAX_LABEL_CHARS);
        assert!(balance(&[("a", 10), (&at_limit, 10)], 0).is_classification());
        // Too many labels.
        let names: Vec<String> = (0..=MAX_CLASSES).map(|i| format!("class {i}")).collect();
        let many: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), 3)).collect();
        assert!(balance(&many[..MAX_CLASSES], 0).is_classification());
        assert!(!balance(&many, 0).is_classification());
    }

    #[test]
    fn merged_label_balances_equal_one_pass() {
        let a = balance(&[("x", 5), ("y", 2)], 1);
        let b = balance(&[("y", 4), ("z", 3)], 0);
        let mut merged = a.clone();
        merged.merge(&b);
        assert_eq!(merged, balance(&[("x", 5), ("y", 6), ("z", 3)], 1));
        assert_eq!((merged.labeled(), merged.unlabeled()), (14, 1));
        // Free text is contagious, and so is going over the class limit.
        let mut merged = a.clone();
        merged.merge(&balance(&[(&"x".repeat(100), 1)], 0));
        assert!(!merged.is_classification() && merged.classes().is_none());
        let names: Vec<String> = (0..MAX_CLASSES).map(|i| format!("c{i}")).collect();
        let mut many = LabelBalance::new();
        names.iter().for_each(|n| many.add(Some(n)));
        many.merge(&a);
        assert_eq!(many.classes(), None);
    }

    #[test]
    fn default_epochs_follow_the_cookbook() {
        let cases = [
            (0, 25),
            (1, 25),
            (4, 25),
            (5, 20),
            (10, 10),
            (30, 3),
            (33, 3),
            (34, 3),
            (1000, 3),
            (8333, 3),
            (8334, 2),
            (12_500, 2),
            (12_501, 1),
            (1_000_000, 1),
            (u64::MAX, 1),
        ];
        for (n, epochs) in cases {
            assert_eq!(default_epochs(n), epochs, "n = {n}");
        }
    }

    #[test]
    fn cost_is_billed_tokens_times_epochs() {
        assert_eq!(billed_tokens_per_epoch([10, 5000, 300], 4096), 10 + 4096 + 300);
        let cost = Cost::new(billed_tokens_per_epoch([10, 5000, 300], 4096), default_epochs(3));
        assert_eq!((cost.epochs, cost.charged_tokens), (25, 4406 * 25));
        assert!((cost.usd(8.0) - 4406.0 * 25.0 / 1e6 * 8.0).abs() < 1e-12);
    }

    #[test]
    fn sampled_estimate_matches_the_formula() {
        assert_eq!(estimate_total(&[], 10), None);
        assert_eq!(estimate_total(&[5], 10), None);
        // The whole population: exact.
        let e = estimate_total(&[5], 1).unwrap();
        assert_eq!((e.value, e.std_error, e.low, e.high), (5.0, 0.0, 5.0, 5.0));
        let e = estimate_total(&[1, 2, 3], 2).unwrap();
        assert_eq!((e.value, e.std_error, e.low, e.high), (6.0, 0.0, 6.0, 6.0));
        // Mean 20, s² = ((10-20)² + 0 + (30-20)²) / 2 = 100; N = 30, n = 3.
        let e = estimate_total(&[10, 20, 30], 30).unwrap();
        let se = 30.0 * ((1.0 - 3.0 / 30.0) * 100.0 / 3.0f64).sqrt();
        assert_eq!(e.value, 600.0);
        assert!((e.std_error - se).abs() < 1e-9);
        assert!((e.low - (600.0 - Z_95 * se)).abs() < 1e-9 && (e.high - (600.0 + Z_95 * se)).abs() < 1e-9);
        let usd = e.scale(3.0 * 8.0 / 1e6);
        assert!(
            (usd.value - 600.0 * 3.0 * 8.0 / 1e6).abs() < 1e-12 && (usd.high - e.high * 24e-6).abs() < 1e-12
        );
        // The low end is never below what the sample holds.
        let e = estimate_total(&[0, 0, 1000], 4).unwrap();
        assert_eq!(e.low, 1000.0);
    }

    #[test]
    fn sampled_interval_covers_the_true_total() {
        let mut rng = Rng(7);
        let population: Vec<u64> = (0..20_000).map(|_| 50 + rng.below(2000) + rng.below(2000)).collect();
        let truth: u64 = population.iter().sum();
        let mut covered = 0;
        for _ in 0..200 {
            let sample: Vec<u64> = (0..400).map(|_| population[rng.below(20_000) as usize]).collect();
            let e = estimate_total(&sample, population.len() as u64).unwrap();
            covered += usize::from(e.low <= truth as f64 && truth as f64 <= e.high);
        }
        // About 95% of 200; well within binomial noise.
        assert!((180..=199).contains(&covered), "{covered}");
    }

    #[test]
    fn packing_by_hand() {
        let lengths = [60, 50, 40, 30, 20, 150];
        let none = pack_none(&lengths, 100).unwrap();
        assert_eq!(none, Packing { sequences: 6, tokens: 300, padding_tokens: 300, truncated_examples: 1 });
        assert_eq!(none.padding_waste_percent(), 50.0);
        // Decreasing: 100 (truncated), 60, 50, 40, 30, 20 -> [100], [60, 40], [50, 30, 20].
        assert_eq!(ffd_loads(&lengths, 100), [100, 100, 100]);
        let packed = pack_ffd(&lengths, 100).unwrap();
        assert_eq!(packed, Packing { sequences: 3, tokens: 300, padding_tokens: 0, truncated_examples: 1 });
        assert_eq!(packed.padding_waste_percent(), 0.0);
        assert_eq!(pack_ffd(&[], 100).unwrap().padding_waste_percent(), 0.0);
        assert_eq!(pack_ffd(&[0, 0], 8).unwrap().sequences, 1);
        assert!(pack_none(&[1], 0).is_err() && pack_ffd(&[1], 0).is_err());
    }

    /// First-fit decreasing the obvious way, O(n * sequences).
    fn naive_ffd(lengths: &[u32], max_len: u32) -> Vec<u64> {
        let mut sizes: Vec<u64> = lengths.iter().map(|&l| u64::from(l.min(max_len))).collect();
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        let mut loads: Vec<u64> = Vec::new();
        for size in sizes {
            match loads.iter_mut().find(|load| **load + size <= u64::from(max_len)) {
                Some(load) => *load += size,
                None => loads.push(size),
            }
        }
        loads
    }

    #[test]
    fn ffd_matches_naive_ffd_on_random_inputs() {
        let mut rng = Rng(2024);
        for case in 0..300 {
            let n = rng.below(300) as usize;
            let max_len = 1 + rng.below(if case % 3 == 0 { 10 } else { 4096 }) as u32;
            let spread = 1 + rng.below(u64::from(max_len) * 2);
            let lengths: Vec<u32> = (0..n).map(|_| rng.below(spread) as u32).collect();
            assert_eq!(
                ffd_loads(&lengths, max_len),
                naive_ffd(&lengths, max_len),
                "case {case}: {lengths:?} / {max_len}"
            );
        }
    }

    #[test]
    fn ffd_scales_to_a_million_examples() {
        let mut rng = Rng(99);
        let lengths: Vec<u32> = (0..1_000_000).map(|_| 1 + rng.below(3000) as u32).collect();
        let packed = pack_ffd(&lengths, 4096).unwrap();
        let none = pack_none(&lengths, 4096).unwrap();
        assert_eq!(packed.tokens, none.tokens);
        assert!(packed.sequences * 4096 >= packed.tokens && packed.sequences < none.sequences / 2);
        assert!(packed.padding_waste_percent() < 5.0, "{}", packed.padding_waste_percent());
    }
}
