//! A traffic split (`dst_overrides`): each attempt goes to one backend
//! chosen at random in proportion to the weights.

/// The backend for one attempt, or `None` when there is no split.
pub(crate) fn choose_backend(overrides: &[(String, u32)]) -> Option<&str> {
    let total: u64 = overrides.iter().map(|(_, w)| u64::from(*w)).sum();
    if total == 0 {
        return None;
    }
    let mut n = fastrand::u64(..total);
    for (authority, w) in overrides {
        if n < u64::from(*w) {
            return Some(authority);
        }
        n -= u64::from(*w);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_honoured() {
        fastrand::seed(7);
        let split = vec![("v1:80".to_string(), 900), ("v2:80".to_string(), 100)];
        let v2 = (0..10_000)
            .filter(|_| choose_backend(&split) == Some("v2:80"))
            .count();
        assert!((800..1200).contains(&v2), "{v2}");
        assert_eq!(choose_backend(&[]), None);
        assert_eq!(choose_backend(&[("only:80".into(), 0)]), None);
    }
}
