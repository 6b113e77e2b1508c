//! Browser binding: a thin layer that turns engine calls into JS values.
//! No engine logic lives here; every method forwards to `Workbench` and turns
//! `Error` into a JS `Error` carrying the engine's message.

use wasm_bindgen::prelude::*;

use crate::engine::data::InputOverride;
use crate::engine::decompose::Settings;
use crate::workbench::{ComposeMode, Pick, Workbench};

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

#[derive(serde::Serialize)]
struct EngineInfo {
    version: &'static str,
    simd: bool,
}

/// `{version, simd}`: the engine's version and whether the SIMD kernels run.
#[wasm_bindgen(js_name = engineInfo)]
pub fn engine_info() -> Result<JsValue, JsError> {
    to_js(&EngineInfo { version: crate::VERSION, simd: crate::engine::kernels::simd_active() })
}

fn to_js<T: serde::Serialize>(v: &T) -> Result<JsValue, JsError> {
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(|e| JsError::new(&e.to_string()))
}

fn from_js<T: serde::de::DeserializeOwned>(v: JsValue, what: &str) -> Result<T, JsError> {
    serde_wasm_bindgen::from_value(v).map_err(|e| JsError::new(&format!("invalid {what}: {e}")))
}

fn engine<T: serde::Serialize>(r: crate::Result<T>) -> Result<JsValue, JsError> {
    to_js(&r.map_err(|e| JsError::new(&e.to_string()))?)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Verify {
    watched: Vec<crate::engine::compose::ClassId>,
    verifier: usize,
}

#[wasm_bindgen]
#[derive(Default)]
pub struct Session {
    wb: Workbench,
}

#[wasm_bindgen]
impl Session {
    #[wasm_bindgen(constructor)]
    pub fn new() -> Session {
        Session::default()
    }

    #[wasm_bindgen(js_name = addDataset)]
    pub fn add_dataset(&mut self, bytes: &[u8], name: &str) -> Result<JsValue, JsError> {
        engine(self.wb.add_dataset(bytes, name))
    }

    /// An IDX images file and its labels file (MNIST's layout): both splits are those samples.
    #[wasm_bindgen(js_name = addIdxDataset)]
    pub fn add_idx_dataset(&mut self, images: &[u8], labels: &[u8], name: &str) -> Result<JsValue, JsError> {
        engine(self.wb.add_idx_dataset(images, labels, name))
    }

    #[wasm_bindgen(js_name = addModel)]
    pub fn add_model(&mut self, bytes: &[u8], file_name: &str, dataset: usize) -> Result<JsValue, JsError> {
        engine(self.wb.add_model(bytes, file_name, dataset, InputOverride::default()))
    }

    /// Adds a saved module set (`.remodule`) on a data set without
    /// re-decomposing: `{model, decomposition}`.
    #[wasm_bindgen(js_name = importModules)]
    pub fn import_modules(&mut self, bytes: &[u8], file_name: &str, dataset: usize) -> Result<JsValue, JsError> {
        engine(self.wb.import_modules(bytes, file_name, dataset))
    }

    /// A decomposed model and its modules as `.remodule` bytes (a `Uint8Array`).
    #[wasm_bindgen(js_name = exportModules)]
    pub fn export_modules(&self, model: usize) -> Result<Vec<u8>, JsError> {
        self.wb.export_modules(model).map_err(|e| JsError::new(&e.to_string()))
    }

    /// A model file, or a saved module set with its modules as saved: `{model, decomposition}` (`null` for a model).
    /// `input`: `{scale, offset}` overriding the input rule (either may be missing), or undefined.
    #[wasm_bindgen(js_name = addFile)]
    pub fn add_file(&mut self, bytes: &[u8], file_name: &str, dataset: usize, input: JsValue) -> Result<JsValue, JsError> {
        let input: InputOverride =
            if input.is_undefined() || input.is_null() { InputOverride::default() } else { from_js(input, "input scaling")? };
        engine(self.wb.add_file(bytes, file_name, dataset, input))
    }

    /// Which bundled data sets an uploaded model fits (`Catalog::fitting`), before it is added:
    /// `{input_shape, classes, fits, message}`. `catalog` is `models/catalog.json` as parsed.
    #[wasm_bindgen(js_name = fitUpload)]
    pub fn fit_upload(&self, bytes: &[u8], file_name: &str, catalog: JsValue) -> Result<JsValue, JsError> {
        let catalog: crate::app::catalog::Catalog = from_js(catalog, "catalog")?;
        engine(catalog.fit_file(bytes, file_name))
    }

    /// The composition `picks` as ONNX bytes (`Workbench::export_onnx`).
    #[wasm_bindgen(js_name = exportOnnx)]
    pub fn export_onnx(&self, picks: JsValue, softmax: Option<bool>) -> Result<Vec<u8>, JsError> {
        let picks: Vec<Pick> = from_js(picks, "module selection")?;
        self.wb.export_onnx(&picks, softmax == Some(true)).map_err(|e| JsError::new(&e.to_string()))
    }

    /// `progress(fraction)` is called as work advances.
    pub fn decompose(&mut self, model: usize, settings: JsValue, progress: &js_sys::Function) -> Result<JsValue, JsError> {
        let settings: Settings =
            if settings.is_undefined() || settings.is_null() { Settings::default() } else { from_js(settings, "settings")? };
        let mut report = |f: f32| {
            let _ = progress.call1(&JsValue::NULL, &JsValue::from_f64(f as f64));
            true
        };
        engine(self.wb.decompose(model, &settings, &mut report))
    }

    /// `{pixels, label}`: raw values of a test sample.
    #[wasm_bindgen(js_name = testSample)]
    pub fn test_sample(&self, dataset: usize, index: usize) -> Result<JsValue, JsError> {
        #[derive(serde::Serialize)]
        struct Sample {
            pixels: Vec<f32>,
            label: u32,
            labels: Vec<u32>,
        }
        engine(self.wb.test_sample(dataset, index).map(|(pixels, labels)| Sample { pixels, label: labels[0], labels }))
    }

    /// Scores one raw input with the picked modules: `{scores, answer}`.
    #[wasm_bindgen(js_name = tryInput)]
    pub fn try_input(&self, picks: JsValue, raw: &[f32]) -> Result<JsValue, JsError> {
        let picks: Vec<Pick> = from_js(picks, "module selection")?;
        engine(self.wb.try_input(&picks, raw))
    }

    /// Kept units of one module per tracked layer: `[{layer, kind, grid, kept}]`.
    #[wasm_bindgen(js_name = moduleUnits)]
    pub fn module_units(&self, model: usize, class: usize) -> Result<JsValue, JsError> {
        engine(self.wb.module_units(model, class))
    }

    /// Jaccard index between every two modules of a model.
    #[wasm_bindgen(js_name = moduleJaccard)]
    pub fn module_jaccard(&self, model: usize) -> Result<JsValue, JsError> {
        engine(self.wb.module_jaccard(model))
    }

    /// The accuracy–size front of model `id` around its current settings
    /// (`app::front`): `[{technique, strength, composed, kept_weights, jaccard}]`;
    /// the model stays decomposed as it was.
    pub fn front(&mut self, model: usize) -> Result<JsValue, JsError> {
        let base = self.wb.settings_of(model);
        engine(base.and_then(|base| crate::app::front::front(&mut self.wb, model, &base)))
    }

    /// Token ids for typed text in a text data set's vocabulary.
    #[wasm_bindgen(js_name = encodeText)]
    pub fn encode_text(&self, dataset: usize, text: &str) -> Result<JsValue, JsError> {
        engine(self.wb.encode_text(dataset, text))
    }

    /// Benchmark figures for a loaded model (see `bench::bench_model`), timed with `Date.now()`;
    /// `inference_only` skips the decomposition figures.
    pub fn bench(&self, model: usize, inference_only: Option<bool>) -> Result<JsValue, JsError> {
        let clock = || js_sys::Date::now() / 1000.0;
        engine(self.wb.model(model).and_then(|(m, d)| crate::app::bench::bench_model(m, d, &clock, inference_only != Some(true))))
    }

    /// Seconds per recomposition of `modules` rows × `samples` (see `bench::bench_recompose`).
    #[wasm_bindgen(js_name = benchRecompose)]
    pub fn bench_recompose(modules: usize, samples: usize) -> Result<f64, JsError> {
        crate::app::bench::bench_recompose(modules, samples, &|| js_sys::Date::now() / 1000.0).map_err(|e| JsError::new(&e.to_string()))
    }

    /// `picks`: `[{model, class}, ...]`; `base`: the model to compare with;
    /// `update`: apply module update first (see `Workbench::compose_updated`);
    /// `verify`: optional `{watched: [class id], verifier: model}` — answers of
    /// the watched classes are checked again (see `Workbench::compose_verified`).
    pub fn compose(&mut self, picks: JsValue, base: Option<usize>, update: Option<bool>, verify: JsValue) -> Result<JsValue, JsError> {
        let picks: Vec<Pick> = from_js(picks, "module selection")?;
        let verify: Option<Verify> = if verify.is_undefined() || verify.is_null() { None } else { Some(from_js(verify, "verification")?) };
        engine(
            ComposeMode::new(update == Some(true), verify.map(|v| (v.watched, v.verifier)))
                .and_then(|mode| self.wb.compose_in(&picks, base, &mode)),
        )
    }
}
