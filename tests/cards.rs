//! Every bundled model loads with the accuracy and parameter count its
//! generated card (models/CARDS.md) states, every catalog model has one, and
//! its native copy (models/native/) is the same model.

use remodule::app::catalog::Catalog;
use remodule::workbench::Workbench;

fn read(p: &str) -> Vec<u8> {
    std::fs::read(format!("{}/{p}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn bundled_models_match_their_cards() {
    let cat = Catalog::parse(&read("models/catalog.json")).unwrap();
    let cards = String::from_utf8(read("models/CARDS.md")).unwrap();
    let mut wb = Workbench::new();
    let mut datasets = std::collections::HashMap::new();
    for m in &cat.models {
        let card = cards
            .split("\n## ")
            .find(|c| c.contains(&format!("- file: `models/{}`", m.file)))
            .unwrap_or_else(|| panic!("no card for {}", m.file));
        let field = |name: &str| {
            card.lines().find_map(|l| l.strip_prefix(&format!("- {name}: "))).unwrap_or_else(|| panic!("{}: no {name}", m.file)).to_string()
        };
        let d = *datasets
            .entry(m.dataset.clone())
            .or_insert_with(|| wb.add_dataset(&read(&format!("data/{}", cat.datasets[&m.dataset].file)), &m.dataset).unwrap().id);
        let info = wb.add_model(&read(&format!("models/{}", m.file)), &m.file, d, Default::default()).unwrap();
        assert_eq!(format!("{:.4}", info.accuracy), field("test accuracy"), "{}", m.file);
        assert_eq!(info.params.to_string(), field("parameters"), "{}", m.file);
        assert!(info.params < 200_000, "{} is too big for the page", m.file);
        // The native copy (tools/convert_models.sh) is the same model.
        let stem = m.file.rsplit_once('.').map_or(m.file.as_str(), |(s, _)| s);
        let native =
            wb.add_model(&read(&format!("models/native/{stem}.remodule")), &format!("{stem}.remodule"), d, Default::default()).unwrap();
        assert_eq!((native.accuracy, native.params), (info.accuracy, info.params), "{}", m.file);
    }
}
