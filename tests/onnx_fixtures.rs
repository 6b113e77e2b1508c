//! The ONNX loader against models written by real tools (tf2onnx, and
//! `onnx.helper` in PyTorch's export style; outputs must match onnxruntime to
//! 1e-4) and against hostile inputs (truncated, corrupted, inconsistent,
//! unsupported): every one must give a typed error, none may panic.

use std::path::PathBuf;

use prost::Message;
use remodule::engine::model::{Activation, Cell, InputKind, Model, Op, Padding, forward};
use remodule::formats::onnx::proto::{AttributeProto, Dimension, GraphProto, ModelProto, NodeProto, TensorProto};
use remodule::formats::onnx::{SUPPORTED_OPS, load_onnx};
use remodule::formats::{load_model, npz};
use remodule::{Error, Result};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx")
}

fn read(stem: &str) -> Vec<u8> {
    std::fs::read(dir().join(format!("{stem}.onnx"))).unwrap()
}

/// (stem, the ONNX input is channels-first) for every fixture: images, then
/// token sequences.
const FIXTURES: [(&str, bool); 15] = [
    ("tf_mlp", false),
    ("tf_cnn", false),
    ("tf_residual", false),
    ("tf_rgb", false),
    ("pt_mlp", true),
    ("pt_cnn", true),
    ("pt_residual", true),
    ("pt_rgb", true),
    ("pt_glue13", true),
    ("pt_glue11", true),
    ("tf_lstm", false),
    ("tf_gru_tags", false),
    ("pt_lstm", false),
    ("pt_gru", false),
    ("pt_rnn", false),
];
const IMAGES: usize = 10;

/// NCHW → NHWC for one batch of `[n, c, h, w]`.
fn to_nhwc(x: &[f32], shape: &[usize]) -> Vec<f32> {
    let [n, c, h, w] = shape[..] else { panic!("{shape:?}") };
    let mut out = vec![0f32; x.len()];
    for s in 0..n {
        for ch in 0..c {
            for y in 0..h {
                for xx in 0..w {
                    out[((s * h + y) * w + xx) * c + ch] = x[((s * c + ch) * h + y) * w + xx];
                }
            }
        }
    }
    out
}

/// Largest |probs − onnxruntime's| over the fixture's expected inputs.
fn max_diff(model: &Model, stem: &str, nchw: bool) -> f32 {
    let exp = npz::read_npz(&std::fs::read(dir().join(format!("{stem}.expected.npz"))).unwrap()).unwrap();
    let shape = &exp["x"].shape;
    let x = if nchw { to_nhwc(&exp["x"].to_f32(), shape) } else { exp["x"].to_f32() };
    let out = forward(model, &x, shape[0], None, false, &mut |_, _| true).unwrap();
    let want = exp["probs"].to_f32();
    assert_eq!(out.probs.len(), want.len(), "{stem}");
    out.probs.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
}

fn load_no_panic(bytes: &[u8], case: &str) -> Result<Model> {
    std::panic::catch_unwind(|| load_onnx(bytes, "x")).unwrap_or_else(|_| panic!("the ONNX loader panicked on {case}"))
}

#[test]
fn fixtures_match_onnxruntime() {
    for (stem, nchw) in FIXTURES {
        let m = load_model(&read(stem), &format!("{stem}.onnx")).unwrap_or_else(|e| panic!("{stem}: {e}"));
        assert_eq!(m.name, stem);
        let d = max_diff(&m, stem, nchw);
        assert!(d < 1e-4, "{stem}: max |probs - onnxruntime| = {d}");
    }
}

#[test]
fn image_inputs_are_channels_last() {
    for (stem, _) in &FIXTURES[..IMAGES] {
        let m = load_onnx(&read(stem), stem).unwrap();
        let want = if stem.ends_with("rgb") { vec![8, 8, 3] } else { vec![28, 28, 1] };
        assert_eq!(m.input.shape, want, "{stem}");
        assert_eq!(m.input.kind, InputKind::Image, "{stem}");
        assert_eq!((m.input.scale, m.input.offset), (None, None));
    }
    for (stem, _) in &FIXTURES[IMAGES..] {
        let m = load_onnx(&read(stem), stem).unwrap();
        assert_eq!(m.input.kind, InputKind::Tokens, "{stem}");
        assert_eq!(m.input.shape, [if stem.contains("tags") || stem.contains("rnn") { 64 } else { 32 }], "{stem}");
    }
}

fn kinds(m: &Model) -> Vec<&'static str> {
    m.nodes.iter().map(|n| n.op.kind()).collect()
}

fn padding(m: &Model, name: &str) -> Padding {
    match &m.nodes.iter().find(|n| n.name == name).unwrap_or_else(|| panic!("no layer {name}")).op {
        Op::Conv2D { padding, .. } | Op::Pool2D { padding, .. } => *padding,
        other => panic!("{name} is {}", other.kind()),
    }
}

/// Glue disappears into the layers it belongs to: biases and activations fuse,
/// transposes and reshapes cost nothing, per-channel constants become one
/// BatchNormalization each, ONNX padding maps to the IR's.
#[test]
fn glue_maps_to_the_expected_layers() {
    let m = load_onnx(&read("pt_glue13"), "g").unwrap();
    assert_eq!(
        kinds(&m),
        [
            "Input",
            "BatchNormalization",
            "BatchNormalization",
            "Conv2D",
            "MaxPool2D",
            "BatchNormalization",
            "AvgPool2D",
            "Activation",
            "Add",
            "Dense",
            "Flatten",
            "Dense"
        ]
    );
    assert!(matches!(m.nodes[9].op, Op::Dense { activation: Activation::Tanh, .. }));
    assert!(matches!(m.nodes[11].op, Op::Dense { activation: Activation::Softmax, .. }), "softmax fused into the head");
    assert_eq!(padding(&m, "conv1"), Padding::Explicit([1, 1, 0, 0]), "SAME_LOWER with an odd total pads the top");
    assert_eq!(padding(&m, "pool1"), Padding::Same, "ceil_mode on 14 with k3 s2 is TF same");
    assert_eq!(padding(&m, "pool2"), Padding::Same);
    assert!(matches!(m.nodes[3].op, Op::Conv2D { activation: Activation::Relu, .. }), "bias Add and Relu fused into conv1");
    let names: Vec<&str> = m.nodes.iter().map(|n| n.name.as_str()).collect();
    assert!(!names.contains(&"conv1_bias") && !names.contains(&"to_nhwc") && !names.contains(&"sq"), "{names:?}");
    assert_eq!(m.nodes[9].shape, [4, 4, 6], "MatMul applies to the last axis of the image");
    let m = load_onnx(&read("pt_residual"), "r").unwrap();
    assert_eq!(padding(&m, "conv1"), Padding::Explicit([1, 1, 1, 1]), "PyTorch stride-2 padding=1 is not TF same");
    assert_eq!(padding(&m, "pool"), Padding::Explicit([1, 1, 1, 1]));
    assert_eq!(
        kinds(&m),
        [
            "Input",
            "Conv2D",
            "BatchNormalization",
            "Activation",
            "Conv2D",
            "BatchNormalization",
            "Add",
            "MaxPool2D",
            "GlobalAveragePooling2D",
            "Dropout",
            "Dense",
            "Activation"
        ]
    );
    assert!(matches!(m.nodes[6].op, Op::Add { activation: Activation::Relu }), "relu2 fused into the Add");
}

/// Recurrent layers: gate orders converted (checked by the outputs above),
/// tf2onnx's "last step of Y" becomes a layer that returns its last state,
/// time-major transposes cost nothing, per-step heads stay per step.
#[test]
fn sequences_map_to_recurrent_layers() {
    let rec = |m: &Model, k: usize| match &m.nodes[k].op {
        Op::Recurrent(r) => (**r).clone(),
        other => panic!("{} is {}", m.nodes[k].name, other.kind()),
    };
    let m = load_onnx(&read("tf_lstm"), "x").unwrap();
    assert_eq!(kinds(&m), ["Input", "Embedding", "LSTM", "Dense"]);
    let r = rec(&m, 2);
    assert!(!r.return_sequences && r.units == 16 && r.recurrent_bias.is_none());
    assert_eq!((r.activation, r.recurrent_activation), (Activation::Tanh, Activation::Sigmoid));
    let m = load_onnx(&read("tf_gru_tags"), "x").unwrap();
    assert_eq!(kinds(&m), ["Input", "Embedding", "GRU", "Dense"]);
    let r = rec(&m, 2);
    assert!(r.return_sequences && r.cell == Cell::Gru { reset_after: true } && r.recurrent_bias.is_some());
    assert_eq!(m.nodes[3].shape, [64, 5]);
    assert_eq!(m.classes(), 5);
    let m = load_onnx(&read("pt_gru"), "x").unwrap();
    let r = rec(&m, 2);
    assert!(!r.return_sequences && r.cell == Cell::Gru { reset_after: false } && r.recurrent_bias.is_none());
    let m = load_onnx(&read("pt_rnn"), "x").unwrap();
    let r = rec(&m, 2);
    assert!(r.return_sequences && r.cell == Cell::SimpleRnn && r.activation == Activation::Relu);
    assert_eq!(kinds(&load_onnx(&read("pt_lstm"), "x").unwrap()), ["Input", "Embedding", "LSTM", "Dense"]);
}

#[test]
fn unsupported_recurrent_options_are_errors() {
    let cases: Vec<Case> = vec![
        (
            "pt_lstm",
            Box::new(|m| {
                set_attr(
                    node(m, "lstm"),
                    AttributeProto { name: "direction".into(), s: b"sideways".to_vec(), r#type: 3, ..Default::default() },
                )
            }),
            "direction=sideways",
        ),
        (
            "pt_lstm",
            Box::new(|m| set_attr(node(m, "lstm"), AttributeProto { name: "clip".into(), f: 3.0, r#type: 1, ..Default::default() })),
            "clip",
        ),
        ("pt_lstm", Box::new(|m| node(m, "last_state").input[0] = "lstm_Y_c".into()), "Y_c"),
        (
            "pt_lstm",
            Box::new(|m| {
                graph(m).initializer.push(TensorProto {
                    name: "p".into(),
                    dims: vec![1, 30],
                    data_type: 1,
                    float_data: vec![0.5; 30],
                    ..Default::default()
                });
                node(m, "lstm").input.push("p".into());
            }),
            "peepholes",
        ),
        (
            "pt_lstm",
            Box::new(|m| {
                set_attr(
                    node(m, "lstm"),
                    AttributeProto {
                        name: "activations".into(),
                        strings: vec![b"Sigmoid".to_vec(), b"Tanh".to_vec(), b"Relu".to_vec()],
                        r#type: 8,
                        ..Default::default()
                    },
                )
            }),
            "activations",
        ),
        (
            "pt_gru",
            Box::new(|m| {
                set_attr(
                    node(m, "gru"),
                    AttributeProto {
                        name: "activations".into(),
                        strings: vec![b"HardSigmoid".to_vec(), b"Tanh".to_vec()],
                        r#type: 8,
                        ..Default::default()
                    },
                );
                // HardSigmoid loads with β 0.5 only (Keras's two hard sigmoids).
                set_attr(
                    node(m, "gru"),
                    AttributeProto { name: "activation_beta".into(), floats: vec![0.3], r#type: 6, ..Default::default() },
                )
            }),
            "HardSigmoid beta 0.3",
        ),
        (
            "pt_gru",
            Box::new(|m| {
                graph(m).initializer.push(TensorProto {
                    name: "first".into(),
                    dims: vec![],
                    data_type: 7,
                    int64_data: vec![0],
                    ..Default::default()
                });
                node(m, "last_step").input[1] = "first".into();
            }),
            "Gather",
        ),
        ("pt_rnn", Box::new(|m| node(m, "time_major").attribute.clear()), "batch"),
    ];
    for (stem, f, want) in cases {
        let e = edit(stem, f).unwrap_err();
        assert!(unsupported(&e) && e.to_string().contains(want), "{stem} ({want}): {e}");
    }
    // Token ids beyond the embedding table fail at run time, with the layer named.
    let m = load_onnx(&read("pt_gru"), "x").unwrap();
    let e = forward(&m, &[99.0; 32], 1, None, false, &mut |_, _| true).unwrap_err();
    assert!(e.to_string().contains("embedding") && e.to_string().contains("99"), "{e}");
}

#[test]
fn nodes_in_any_order_load_the_same_model() {
    for stem in ["pt_cnn", "tf_cnn", "pt_glue13"] {
        let want = load_onnx(&read(stem), "x").unwrap();
        let got = edit(stem, |m| graph(m).node.reverse()).unwrap();
        assert_eq!(got, want, "{stem}");
    }
}

// ---------------------------------------------------------------- helpers

fn proto(stem: &str) -> ModelProto {
    ModelProto::decode(read(stem).as_slice()).unwrap()
}

fn graph(m: &mut ModelProto) -> &mut GraphProto {
    m.graph.as_mut().unwrap()
}

fn node<'a>(m: &'a mut ModelProto, name: &str) -> &'a mut NodeProto {
    graph(m).node.iter_mut().find(|n| n.name == name).unwrap_or_else(|| panic!("no node {name}"))
}

fn init<'a>(m: &'a mut ModelProto, name: &str) -> &'a mut TensorProto {
    graph(m).initializer.iter_mut().find(|t| t.name == name).unwrap_or_else(|| panic!("no initializer {name}"))
}

/// Re-encodes fixture `stem` after `f` and loads it (without panicking).
fn edit(stem: &str, f: impl FnOnce(&mut ModelProto)) -> Result<Model> {
    let mut m = proto(stem);
    f(&mut m);
    load_no_panic(&m.encode_to_vec(), &format!("an edited {stem}"))
}

fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: name.into(), i: v, r#type: 2, ..Default::default() }
}

fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), ints: v.to_vec(), r#type: 7, ..Default::default() }
}

fn set_attr(n: &mut NodeProto, a: AttributeProto) {
    n.attribute.retain(|x| x.name != a.name);
    n.attribute.push(a);
}

fn floats(t: &mut TensorProto) -> Vec<f32> {
    if t.raw_data.is_empty() {
        t.float_data.clone()
    } else {
        t.raw_data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
    }
}

fn set_floats(t: &mut TensorProto, v: &[f32]) {
    t.raw_data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    t.float_data.clear();
}

fn xorshift(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// (fixture, an edit, text the error must contain).
type Case = (&'static str, Box<dyn FnOnce(&mut ModelProto)>, &'static str);

fn unsupported(e: &Error) -> bool {
    matches!(e, Error::Unsupported { .. })
}

// ---------------------------------------------------------------- hostile files

#[test]
fn truncated_files_are_errors() {
    for (stem, _) in FIXTURES {
        let bytes = read(stem);
        let full = load_onnx(&bytes, "x").unwrap();
        let n = bytes.len();
        let mut cuts: Vec<usize> = (0..40).map(|i| n * i / 40).collect();
        cuts.extend([1, 2, 3, 10, n - 100, n - 10, n - 2, n - 1]);
        let mut errors = 0;
        for cut in cuts {
            match load_no_panic(&bytes[..cut], &format!("{stem} cut at {cut}")) {
                Err(_) => errors += 1,
                // A cut at a field boundary leaves a shorter valid message: it
                // may load only if what was cut off did not matter.
                Ok(m) => assert_eq!(m, full, "{stem} cut at {cut} of {n} loaded a different model"),
            }
        }
        assert!(errors >= 40, "{stem}: only {errors} cuts failed");
    }
}

#[test]
fn corrupted_bytes_never_panic_or_hang() {
    // No checksum protects a protobuf: a flip may land in a weight and load
    // fine, but must never panic or hang.
    let mut seed = 0x51f1_e2d3_c4b5_a697u64;
    for (stem, _) in FIXTURES {
        let bytes = read(stem);
        let mut errors = 0;
        for k in 0..150 {
            let mut b = bytes.clone();
            let span = if k % 2 == 0 { b.len() } else { 600.min(b.len()) };
            for _ in 0..1 + k % 4 {
                let at = (xorshift(&mut seed) as usize) % span;
                b[at] = if k % 5 == 0 { 0xff } else { b[at] ^ (1 << (xorshift(&mut seed) % 8)) };
            }
            let t = std::time::Instant::now();
            errors += load_no_panic(&b, &format!("{stem} mutation {k}")).is_err() as usize;
            assert!(t.elapsed().as_secs() < 5, "{stem} mutation {k} took {:?}", t.elapsed());
        }
        assert!(errors > 0, "{stem}");
    }
}

#[test]
fn wrong_magic_and_garbage_are_errors() {
    let keras = std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/digits_mlp.keras")).unwrap();
    let h5 = std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/digits_mlp.h5")).unwrap();
    for (what, junk) in [
        ("keras", &keras[..]),
        ("h5", &h5[..]),
        ("empty", b""),
        ("zeros", &[0u8; 4096][..]),
        ("text", b"hello, world"),
        ("ff", &[0xffu8; 64][..]),
        ("npy", b"\x93NUMPY\x01\x00"),
    ] {
        let e = load_no_panic(junk, what).unwrap_err();
        assert!(matches!(e, Error::Format { .. }), "{what}: {e:?}");
    }
    // Sniffing: the .onnx extension or the ir_version field selects the loader.
    let e = load_model(b"hello", "model.bin").unwrap_err();
    assert!(unsupported(&e) && e.to_string().contains("ONNX"), "{e}");
    assert!(matches!(load_model(b"hello", "model.onnx"), Err(Error::Format { .. })));
    assert!(load_model(&read("pt_mlp"), "renamed.bin").is_ok());
    // A well-formed protobuf that is not a model.
    let e = load_onnx(&ModelProto { ir_version: 8, ..Default::default() }.encode_to_vec(), "x").unwrap_err();
    assert!(e.to_string().contains("no graph"), "{e}");
    let e = edit("pt_mlp", |m| m.opset_import.clear()).unwrap_err();
    assert!(e.to_string().contains("opset"), "{e}");
}

#[test]
fn huge_declared_sizes_are_errors() {
    // Dimensions that multiply past the engine's tensor limit.
    let e = edit("pt_mlp", |m| init(m, "fc1.weight").dims = vec![1 << 20, 1 << 20]).unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }), "{e}");
    // Dimensions larger than the stored data, in raw_data and in float_data.
    let e =
        edit("tf_mlp", |m| graph(m).initializer.iter_mut().find(|t| t.dims == [784, 16]).unwrap().dims = vec![784, 16_000]).unwrap_err();
    assert!(matches!(e, Error::Format { .. }) && e.to_string().contains("12544000 values"), "{e}");
    let e = edit("pt_mlp", |m| {
        let t = init(m, "fc2.bias");
        t.float_data = floats(t);
        t.raw_data.clear();
        t.dims = vec![1_000_000];
    })
    .unwrap_err();
    assert!(matches!(e, Error::Format { .. }) && e.to_string().contains("float_data"), "{e}");
    // Length prefixes past the end of the file: the graph, a raw_data field.
    let mut b = vec![0x08, 0x08, 0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f];
    b.extend([0u8; 64]);
    assert!(matches!(load_no_panic(&b, "graph length 4 GiB"), Err(Error::Format { .. })));
    let raw = TensorProto { name: "w".into(), dims: vec![4], data_type: 1, raw_data: vec![0; 16], ..Default::default() };
    let mut bytes =
        ModelProto { ir_version: 8, graph: Some(GraphProto { initializer: vec![raw], ..Default::default() }), ..Default::default() }
            .encode_to_vec();
    let at = bytes.windows(2).position(|w| w == [0x4a, 16]).expect("raw_data field");
    bytes.splice(at + 1..at + 2, [0xff, 0xff, 0xff, 0xff, 0x07]);
    assert!(matches!(load_no_panic(&bytes, "raw_data length 2 GiB"), Err(Error::Format { .. })));
    // Many empty nodes: counted on the wire, refused before decoding.
    let g = GraphProto { node: vec![NodeProto::default(); 70_000], ..Default::default() };
    let bytes = ModelProto { ir_version: 8, graph: Some(g), ..Default::default() }.encode_to_vec();
    let t = std::time::Instant::now();
    assert!(matches!(load_no_panic(&bytes, "70,000 nodes"), Err(Error::TooLarge { .. })));
    assert!(t.elapsed().as_secs() < 2);
    // An input shape beyond the engine's activation limit.
    let e = edit("pt_mlp", |m| {
        let dims = &mut graph(m).input[0].r#type.as_mut().unwrap().tensor_type.as_mut().unwrap().shape.as_mut().unwrap().dim;
        dims[2].dim_value = Some(1 << 20);
        dims[3].dim_value = Some(1 << 20);
    })
    .unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }), "{e}");
}

#[test]
fn shared_or_repeated_weights_cannot_multiply_memory() {
    // 40 MatMul nodes all reading one 784×784 initializer would materialise
    // 40 copies (98 MB) from a 2.4 MB file: refused once past the file size.
    let w = TensorProto { name: "w".into(), dims: vec![784, 784], data_type: 1, raw_data: vec![0; 784 * 784 * 4], ..Default::default() };
    let mut m = proto("pt_mlp");
    let g = graph(&mut m);
    g.initializer.push(w);
    let flat = g.node.iter().position(|n| n.name == "flatten").unwrap();
    let mut prev = g.node[flat].output[0].clone();
    for k in 0..40 {
        g.node.push(NodeProto {
            name: format!("mm{k}"),
            op_type: "MatMul".into(),
            input: vec![prev.clone(), "w".into()],
            output: vec![format!("mm{k}_out")],
            ..Default::default()
        });
        prev = format!("mm{k}_out");
    }
    node(&mut m, "fc1").input[0] = prev;
    let bytes = m.encode_to_vec();
    let e = load_no_panic(&bytes, "shared weights").unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }) && e.to_string().contains("mm"), "{e}");
    // Constant folding: one initializer concatenated with itself 2,000 times.
    let mut m = proto("pt_mlp");
    let g = graph(&mut m);
    g.node.insert(
        0,
        NodeProto {
            name: "cat".into(),
            op_type: "Concat".into(),
            input: vec!["fc1.weight".into(); 2000],
            output: vec!["big".into()],
            attribute: vec![attr_int("axis", 0)],
            ..Default::default()
        },
    );
    node(&mut m, "fc2_add").input.push("big".into());
    let e = load_no_panic(&m.encode_to_vec(), "concat bomb").unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }), "{e}");
}

#[test]
fn cycles_and_undefined_tensors_are_errors() {
    // fc1 reads relu1's output, which depends on fc1.
    let e = edit("pt_mlp", |m| node(m, "fc1").input[0] = "relu1_out".into()).unwrap_err();
    assert!(matches!(e, Error::Format { .. }) && e.to_string().contains("cycle"), "{e}");
    let e = edit("pt_mlp", |m| node(m, "relu1").input[0] = "relu1_out".into()).unwrap_err();
    assert!(e.to_string().contains("cycle") && e.to_string().contains("relu1"), "{e}");
    let e = edit("pt_mlp", |m| node(m, "fc1").input[0] = "nope".into()).unwrap_err();
    assert!(matches!(e, Error::Format { .. }) && e.to_string().contains("'nope'") && e.to_string().contains("fc1"), "{e}");
    let e = edit("pt_mlp", |m| graph(m).output[0].name = "nowhere".into()).unwrap_err();
    assert!(e.to_string().contains("nowhere"), "{e}");
    let e = edit("pt_mlp", |m| node(m, "relu1").output[0] = "fc1_out".into()).unwrap_err();
    assert!(e.to_string().contains("more than one"), "{e}");
    let e = edit("pt_mlp", |m| node(m, "relu1").output[0] = "fc1.bias".into()).unwrap_err();
    assert!(e.to_string().contains("more than one"), "{e}");
    // Unused nodes are ignored, even broken ones.
    let m = edit("pt_mlp", |m| {
        graph(m).node.push(NodeProto {
            name: "dead".into(),
            op_type: "FancyOp".into(),
            input: vec!["missing".into()],
            output: vec!["d".into()],
            ..Default::default()
        })
    })
    .unwrap();
    assert_eq!(m, load_onnx(&read("pt_mlp"), "x").unwrap());
}

#[test]
fn unknown_ops_are_unsupported() {
    let e = edit("pt_mlp", |m| node(m, "relu1").op_type = "FancyOp".into()).unwrap_err();
    let msg = e.to_string();
    assert!(unsupported(&e) && msg.contains("FancyOp") && msg.contains("relu1"), "{msg}");
    assert!(msg.contains(SUPPORTED_OPS) && SUPPORTED_OPS.contains("Conv") && SUPPORTED_OPS.contains("Gemm"), "{msg}");
    let e = edit("pt_cnn", |m| node(m, "relu1").domain = "com.microsoft".into()).unwrap_err();
    assert!(unsupported(&e) && e.to_string().contains("com.microsoft.Relu"), "{e}");
    for op in ["Selu", "Loop", "If", "Resize", "LpPool", "Einsum"] {
        let e = edit("pt_cnn", |m| node(m, "relu1").op_type = op.into()).unwrap_err();
        assert!(unsupported(&e) && e.to_string().contains(op) && e.to_string().contains("relu1"), "{op}: {e}");
    }
    // Arithmetic between two computed tensors that the IR cannot express.
    let e = edit("pt_residual", |m| node(m, "add").op_type = "Sub".into()).unwrap_err();
    assert!(unsupported(&e) && e.to_string().contains("'add' (Sub)"), "{e}");
    // A product of two computed tensors is an IR Multiply (a Bidirectional's `mul` merge).
    let m = edit("pt_residual", |m| node(m, "add").op_type = "Mul".into()).unwrap();
    assert!(m.nodes.iter().any(|n| n.op.kind() == "Multiply"));
}

#[test]
fn nan_weights_are_errors() {
    let e = edit("tf_mlp", |m| {
        let t = graph(m).initializer.iter_mut().find(|t| t.dims == [784, 16]).unwrap();
        let mut v = floats(t);
        v[100] = f32::NAN;
        set_floats(t, &v);
    })
    .unwrap_err();
    assert_eq!(e, Error::NonFinite { layer: "tf_mlp/dense_1/MatMul".into(), what: "kernel".into() });
    let e = edit("pt_residual", |m| {
        let t = init(m, "bn1.running_var");
        let mut v = floats(t);
        v[2] = f32::INFINITY;
        set_floats(t, &v);
    })
    .unwrap_err();
    assert_eq!(e, Error::NonFinite { layer: "bn1".into(), what: "input_var".into() });
    let e =
        edit("pt_mlp", |m| set_attr(node(m, "fc1"), AttributeProto { name: "alpha".into(), f: f32::NAN, r#type: 1, ..Default::default() }))
            .unwrap_err();
    assert_eq!(e, Error::NonFinite { layer: "fc1".into(), what: "kernel".into() });
    let e = edit("pt_glue13", |m| {
        let t = init(m, "per_channel");
        set_floats(t, &[1.0, 0.0, 2.0]);
    })
    .unwrap_err();
    assert!(matches!(e, Error::NonFinite { .. }) && e.to_string().contains("div"), "division by a zero constant: {e}");
}

#[test]
fn weights_that_do_not_match_shapes_are_errors() {
    let e = edit("pt_mlp", |m| init(m, "fc1.weight").dims = vec![784, 16]).unwrap_err();
    assert!(matches!(e, Error::Shape { .. }) && e.to_string().contains("fc1") && e.to_string().contains("784"), "{e}");
    let e = edit("pt_cnn", |m| init(m, "conv2.weight").dims = vec![16, 2, 3, 3]).unwrap_err();
    assert!(matches!(e, Error::Shape { .. }) && e.to_string().contains("conv2") && e.to_string().contains("4 input channels"), "{e}");
    let e = edit("pt_cnn", |m| set_attr(node(m, "conv2"), attr_ints("kernel_shape", &[5, 5]))).unwrap_err();
    assert!(matches!(e, Error::Shape { .. }) && e.to_string().contains("kernel_shape"), "{e}");
    let e = edit("pt_residual", |m| {
        let t = init(m, "bn2.weight");
        let v = floats(t);
        set_floats(t, &v[..5]);
        t.dims = vec![5];
    })
    .unwrap_err();
    assert!(matches!(e, Error::Shape { .. }) && e.to_string().contains("bn2"), "{e}");
    let e = edit("pt_mlp", |m| {
        let t = init(m, "fc1.bias");
        let v = floats(t);
        set_floats(t, &v[..15]);
        t.dims = vec![15];
    })
    .unwrap_err();
    assert!(matches!(e, Error::Shape { .. }) && e.to_string().contains("bias C"), "{e}");
    // The head's weights for 12 classes, the data for 10: fine for the file (it is its own model).
    let e = edit("pt_residual", |m| {
        let t = init(m, "fc.weight");
        t.dims = vec![6, 10];
    })
    .unwrap_err();
    assert!(matches!(e, Error::Shape { .. }) && e.to_string().contains("'fc'"), "{e}");
}

#[test]
fn unsupported_options_are_errors() {
    let cases: Vec<Case> = vec![
        ("pt_cnn", Box::new(|m| set_attr(node(m, "conv2"), attr_int("group", 2))), "group=2"),
        ("pt_cnn", Box::new(|m| set_attr(node(m, "conv2"), attr_ints("dilations", &[2, 2]))), "dilations"),
        ("pt_cnn", Box::new(|m| set_attr(node(m, "pool1"), attr_ints("dilations", &[2, 2]))), "dilations"),
        (
            "pt_residual",
            Box::new(|m| {
                set_attr(node(m, "pool"), attr_int("count_include_pad", 1));
                node(m, "pool").op_type = "AveragePool".into();
            }),
            "count_include_pad",
        ),
        ("pt_residual", Box::new(|m| set_attr(node(m, "bn1"), attr_int("training_mode", 1))), "training_mode"),
        ("pt_mlp", Box::new(|m| set_attr(node(m, "fc1"), attr_int("transA", 1))), "transA"),
        (
            "pt_cnn",
            Box::new(|m| {
                let n = node(m, "relu1");
                n.op_type = "Transpose".into();
                set_attr(n, attr_ints("perm", &[1, 0, 2, 3]));
            }),
            "batch",
        ),
        ("pt_mlp", Box::new(|m| set_attr(node(m, "flatten"), attr_int("axis", 0))), "batch"),
        ("pt_mlp", Box::new(|m| set_attr(node(m, "softmax"), attr_int("axis", 0))), "axis=0"),
        (
            "pt_mlp",
            Box::new(|m| {
                let mut extra = graph(m).input[0].clone();
                extra.name = "second".into();
                graph(m).input.push(extra);
            }),
            "'second'",
        ),
        (
            "pt_mlp",
            Box::new(|m| {
                let extra = graph(m).output[0].clone();
                graph(m).output.push(extra);
            }),
            "output",
        ),
        (
            "pt_mlp",
            Box::new(|m| {
                let d = &mut graph(m).input[0].r#type.as_mut().unwrap().tensor_type.as_mut().unwrap().shape.as_mut().unwrap().dim[2];
                *d = Dimension { dim_value: None, dim_param: Some("height".into()) };
            }),
            "'height'",
        ),
        ("pt_mlp", Box::new(|m| graph(m).input[0].r#type.as_mut().unwrap().tensor_type.as_mut().unwrap().elem_type = 10), "FLOAT16"),
        ("pt_mlp", Box::new(|m| init(m, "fc1.weight").data_location = 1), "external data"),
        (
            "pt_cnn",
            Box::new(|m| {
                // Reshape the pooled [8, 6, 6] to [48, 6]: the IR has no such reshape.
                let g = graph(m);
                g.initializer.push(TensorProto {
                    name: "s".into(),
                    dims: vec![3],
                    data_type: 7,
                    int64_data: vec![0, 48, 6],
                    ..Default::default()
                });
                let f = g.node.iter_mut().find(|n| n.name == "flatten").unwrap();
                f.op_type = "Reshape".into();
                f.input.push("s".into());
                f.attribute.clear();
            }),
            "[48, 6]",
        ),
    ];
    for (stem, f, want) in cases {
        let e = edit(stem, f).unwrap_err();
        assert!(unsupported(&e) && e.to_string().contains(want), "{stem} ({want}): {e}");
    }
}

#[test]
fn html_node_names_are_plain_data() {
    let evil = "<img src=x onerror=alert(1)>";
    let m = edit("pt_mlp", |m| node(m, "fc1").name = evil.into()).unwrap();
    assert_eq!(m.nodes[2].name, evil);
    let e = edit("pt_mlp", |m| {
        let n = node(m, "relu1");
        n.name = evil.into();
        n.op_type = "<b>Bold</b>".into();
    })
    .unwrap_err();
    assert!(e.to_string().contains(evil) && e.to_string().contains("<b>Bold</b>"), "{e}");
}

/// A longer mutation campaign over every fixture. Run with
/// `cargo test --release --test onnx_fixtures -- --ignored` (ONNX_FUZZ_ITERS
/// sets the number of mutations, default 20000). `scripts/fuzz` runs the
/// coverage-guided fuzz targets.
#[test]
#[ignore]
fn fuzz_long() {
    let iters: usize = std::env::var("ONNX_FUZZ_ITERS").ok().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let sources: Vec<Vec<u8>> = FIXTURES.iter().map(|(s, _)| read(s)).collect();
    let mut seed = 0x0dd_ba11_f00d_5eedu64;
    let (mut ok, mut err, mut slowest) = (0, 0, std::time::Duration::ZERO);
    for k in 0..iters {
        let mut b = sources[k % sources.len()].clone();
        for _ in 0..1 + xorshift(&mut seed) % 4 {
            let n = b.len().max(1);
            let at = (xorshift(&mut seed) as usize) % n;
            match xorshift(&mut seed) % 4 {
                0 => b.truncate(at),
                1 => b[at] ^= 1 << (xorshift(&mut seed) % 8),
                2 => b[at] = [0, 0x7f, 0x80, 0xff][(xorshift(&mut seed) % 4) as usize],
                _ => {
                    let from = (xorshift(&mut seed) as usize) % n;
                    let len = (1 + xorshift(&mut seed) as usize % 16).min(n - from).min(n - at);
                    let span = b[from..from + len].to_vec();
                    b[at..at + len].copy_from_slice(&span);
                }
            }
            if b.is_empty() {
                break;
            }
        }
        let t = std::time::Instant::now();
        if load_no_panic(&b, &format!("mutation {k}")).is_ok() {
            ok += 1
        } else {
            err += 1
        }
        slowest = slowest.max(t.elapsed());
    }
    eprintln!("{iters} mutations: {ok} loaded, {err} errors, slowest {slowest:?}");
    assert!(slowest.as_secs() < 10);
}

/// tf2onnx writes Keras's RepeatVector as Unsqueeze + Tile by constant
/// repeats: it becomes the IR's RepeatVector and the encoder–decoder computes
/// what onnxruntime does. Any other Tile is a typed error naming the node.
#[test]
fn tile_of_an_encoder_state_is_a_repeat_vector() {
    let m = load_model(&read("tf_repeat"), "tf_repeat.onnx").unwrap();
    assert!(
        matches!(m.nodes.iter().find(|n| n.op.kind() == "RepeatVector").map(|n| &n.op), Some(Op::RepeatVector { times: 4 })),
        "{:?}",
        kinds(&m)
    );
    assert_eq!((m.input_len(), m.out_steps(), m.classes()), (6, 4, 3));
    let d = max_diff(&m, "tf_repeat", false);
    assert!(d < 1e-4, "tf_repeat: max |probs - onnxruntime| = {d}");
    let repeats = |m: &mut ModelProto| -> String {
        let g = m.graph.as_mut().unwrap();
        g.node.iter().find(|n| n.op_type == "Tile").unwrap().input[1].clone()
    };
    let set = |values: Vec<i64>| {
        move |m: &mut ModelProto| {
            let name = repeats(m);
            let t = m.graph.as_mut().unwrap().initializer.iter_mut().find(|t| t.name == name).unwrap();
            *t = TensorProto { name, dims: vec![values.len() as i64], data_type: 7, int64_data: values.clone(), ..Default::default() };
        }
    };
    let cases: Vec<Case> = vec![
        ("tf_repeat", Box::new(set(vec![2, 4, 1])), "the batch 2 times"),
        ("tf_repeat", Box::new(set(vec![1, 4, 2])), "more than one axis"),
        ("tf_repeat", Box::new(set(vec![1, 1, 3])), "shape [1, 5] per sample"),
        ("tf_repeat", Box::new(set(vec![1, 4])), "3 values"),
        ("tf_repeat", Box::new(set(vec![1, 0, 1])), "0 times"),
        // Repeats read from the input's shape at run time.
        (
            "tf_repeat",
            Box::new(|m: &mut ModelProto| {
                let g = m.graph.as_mut().unwrap();
                let tile = g.node.iter().position(|n| n.op_type == "Tile").unwrap();
                let x = g.node[tile].input[0].clone();
                g.node.insert(
                    tile,
                    NodeProto {
                        op_type: "Shape".into(),
                        name: "reps".into(),
                        input: vec![x],
                        output: vec!["reps_out".into()],
                        ..Default::default()
                    },
                );
                g.node[tile + 1].input[1] = "reps_out".into();
            }),
            "at run time",
        ),
    ];
    for (stem, f, want) in cases {
        let e = edit(stem, f).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(want) && msg.contains("Tile"), "{want}: {msg}");
    }
}
