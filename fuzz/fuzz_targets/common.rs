// Shared by the model targets: a model that loads must also run one sample.

use remodule::engine::model::{forward, Model};

/// Runs one all-zero sample (token id 0, black pixels) through a model that
/// loaded, so shapes the loader accepted are exercised by the engine too.
pub fn exercise(model: &Model) {
    let n = model.input_len();
    if n <= 1 << 16 {
        let _ = forward(model, &vec![0.0; n], 1, None, false, &mut |_, _| true);
    }
}
