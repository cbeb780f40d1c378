//! The 1,000 ImageNet-1k class names, in the order of torchvision's classifiers
//! (`torchvision.models._meta._IMAGENET_CATEGORIES`, kept in `data/imagenet_classes.txt`).

const NAMES: &str = include_str!("../../data/imagenet_classes.txt");

/// The name of ImageNet class `index` (0–999): 285 is "Egyptian cat".
pub fn imagenet_class(index: usize) -> Option<&'static str> {
    NAMES.lines().nth(index)
}

/// How many names there are (1000).
pub fn imagenet_class_count() -> usize {
    NAMES.lines().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_are_torchvisions() {
        assert_eq!(imagenet_class_count(), 1000);
        assert_eq!(imagenet_class(285), Some("Egyptian cat"));
        assert_eq!(imagenet_class(282), Some("tiger cat"));
        assert_eq!(imagenet_class(281), Some("tabby"));
        assert_eq!(imagenet_class(287), Some("lynx"));
        assert_eq!(imagenet_class(622), Some("lens cap"));
        assert_eq!(imagenet_class(111), Some("nematode"));
        assert_eq!(imagenet_class(1000), None);
    }
}
