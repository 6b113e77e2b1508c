//! Packed bit sets and bit matrices: activity records are one bit per
//! (unit, sample), and module masks are bit sets over units.

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BitSet {
    len: usize,
    words: Vec<u64>,
}

impl BitSet {
    pub fn new(len: usize) -> Self {
        BitSet { len, words: vec![0; len.div_ceil(64)] }
    }
    pub fn full(len: usize) -> Self {
        let mut words = vec![u64::MAX; len.div_ceil(64)];
        if let (r @ 1.., Some(last)) = (len % 64, words.last_mut()) {
            *last = (1u64 << r) - 1;
        }
        BitSet { len, words }
    }
    pub fn from_indices(len: usize, idx: impl IntoIterator<Item = usize>) -> Self {
        let mut s = Self::new(len);
        idx.into_iter().for_each(|i| s.insert(i));
        s
    }
    /// The set stored as `words()` gives them; `None` unless there are exactly
    /// `len.div_ceil(64)` words and no bit at or past `len` (`count` relies on it).
    pub fn from_words(len: usize, words: Vec<u64>) -> Option<Self> {
        let tail_clear = match (len % 64, words.last()) {
            (0, _) | (_, None) => true,
            (r, Some(&w)) => w >> r == 0,
        };
        (words.len() == len.div_ceil(64) && tail_clear).then_some(BitSet { len, words })
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    #[inline]
    pub fn insert(&mut self, i: usize) {
        self.words[i / 64] |= 1 << (i % 64);
    }
    #[inline]
    pub fn remove(&mut self, i: usize) {
        self.words[i / 64] &= !(1 << (i % 64));
    }
    #[inline]
    pub fn contains(&self, i: usize) -> bool {
        self.words[i / 64] >> (i % 64) & 1 == 1
    }
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }
    pub fn words(&self) -> &[u64] {
        &self.words
    }
    /// The members in increasing order, a word at a time (sparse sets of
    /// many items are iterated per class in decomposition).
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &word)| {
            let mut rest = word;
            std::iter::from_fn(move || {
                (rest != 0).then(|| {
                    let bit = rest.trailing_zeros() as usize;
                    rest &= rest - 1;
                    w * 64 + bit
                })
            })
        })
    }
    pub fn union_with(&mut self, o: &BitSet) {
        self.words.iter_mut().zip(&o.words).for_each(|(a, b)| *a |= b);
    }
}

/// `rows × cols` bits, row-major, each row padded to whole words so a row can
/// be combined with a `BitSet` of length `cols` word by word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitMatrix {
    rows: usize,
    cols: usize,
    wpr: usize,
    data: Vec<u64>,
}

impl BitMatrix {
    pub fn new(rows: usize, cols: usize) -> Self {
        let wpr = cols.div_ceil(64);
        BitMatrix { rows, cols, wpr, data: vec![0; rows * wpr] }
    }
    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    #[inline]
    pub fn set(&mut self, r: usize, c: usize) {
        self.data[r * self.wpr + c / 64] |= 1 << (c % 64);
    }
    #[inline]
    pub fn get(&self, r: usize, c: usize) -> bool {
        self.data[r * self.wpr + c / 64] >> (c % 64) & 1 == 1
    }
    pub fn row(&self, r: usize) -> &[u64] {
        &self.data[r * self.wpr..(r + 1) * self.wpr]
    }
    /// Does row `r` have a bit in common with `set`? ("active for any sample of the set")
    pub fn row_meets(&self, r: usize, set: &BitSet) -> bool {
        self.row(r).iter().zip(set.words()).any(|(a, b)| a & b != 0)
    }
    /// Does row `r` contain all of `set`? ("active for every sample of the set")
    pub fn row_covers(&self, r: usize, set: &BitSet) -> bool {
        self.row(r).iter().zip(set.words()).all(|(a, b)| a & b == *b)
    }
    /// ORs `word` into word `w` of row `r` (columns `64w..64w + 64`).
    #[inline]
    pub fn or_word(&mut self, r: usize, w: usize, word: u64) {
        self.data[r * self.wpr + w] |= word;
    }
    /// ORs `part` (same rows) into columns `first..first + part.cols()`, a
    /// word at a time (how a batch's bits join the whole pass's).
    pub fn or_columns(&mut self, first: usize, part: &BitMatrix) {
        assert!(part.rows == self.rows && first + part.cols <= self.cols, "bit matrix part out of range");
        let (at, shift) = (first / 64, first % 64);
        for r in 0..self.rows {
            let row = &mut self.data[r * self.wpr..(r + 1) * self.wpr];
            for (w, &x) in part.row(r).iter().enumerate() {
                row[at + w] |= x << shift;
                // The high bits spill into the next word (set only if those columns exist).
                if shift > 0 && x >> (64 - shift) != 0 {
                    row[at + w + 1] |= x >> (64 - shift);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn columns_or_in_at_any_offset() {
        for (first, cols) in [(0, 5), (3, 64), (57, 70), (64, 1), (100, 28)] {
            let mut part = BitMatrix::new(3, cols);
            let mut whole = BitMatrix::new(3, 128);
            let mut want = BitMatrix::new(3, 128);
            whole.set(1, 127);
            want.set(1, 127);
            for c in (0..cols).filter(|c| c % 3 != 1) {
                part.set(c % 3, c);
                want.set(c % 3, first + c);
            }
            whole.or_columns(first, &part);
            assert_eq!(whole, want, "{first} {cols}");
        }
    }

    #[test]
    fn rows_meet_and_cover() {
        let mut m = BitMatrix::new(2, 130);
        m.set(0, 3);
        m.set(0, 129);
        m.set(1, 3);
        let s = BitSet::from_indices(130, [3, 129]);
        assert!(m.row_meets(0, &s) && m.row_covers(0, &s));
        assert!(m.row_meets(1, &s) && !m.row_covers(1, &s));
        assert!(!m.row_meets(1, &BitSet::from_indices(130, [64])));
        assert_eq!(s.count(), 2);
        assert_eq!(s.iter().collect::<Vec<_>>(), [3, 129]);
    }

    #[test]
    fn from_words_checks_length_and_tail() {
        let s = BitSet::from_indices(70, [0, 69]);
        assert_eq!(BitSet::from_words(70, s.words().to_vec()), Some(s.clone()));
        assert_eq!(BitSet::from_words(70, vec![1]), None);
        assert_eq!(BitSet::from_words(70, vec![1, 1 << 6]), None);
        assert_eq!(BitSet::from_words(64, vec![u64::MAX]).map(|s| s.count()), Some(64));
        assert_eq!(BitSet::from_words(0, vec![]), Some(BitSet::new(0)));
    }

    proptest! {
        #[test]
        fn iter_lists_exactly_the_members_in_order(len in 0usize..300, picks in proptest::collection::vec(0usize..300, 0..100)) {
            let s = BitSet::from_indices(len, picks.iter().copied().filter(|&i| i < len));
            let want: Vec<usize> = (0..len).filter(|&i| s.contains(i)).collect();
            prop_assert_eq!(s.iter().collect::<Vec<_>>(), want.clone());
            prop_assert_eq!(s.count(), want.len());
            let full = BitSet::full(len);
            prop_assert_eq!(&full, &BitSet::from_indices(len, 0..len));
            prop_assert_eq!(full.count(), len);
        }
    }
}
