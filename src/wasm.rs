//! Browser binding: a thin layer that turns engine calls into JS values.
//! No engine logic lives here; every function forwards to the engine and
//! converts `Error` into a JS `Error` with the engine's message.

use wasm_bindgen::prelude::*;

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
    to_js(&EngineInfo { version: crate::VERSION, simd: crate::kernels::simd_active() })
}

fn to_js<T: serde::Serialize>(v: &T) -> Result<JsValue, JsError> {
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(|e| JsError::new(&e.to_string()))
}
