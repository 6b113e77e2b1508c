// Exported compositions run in a real ONNX runtime (onnxruntime-web's wasm
// backend, in node) and answer exactly what the engine composes: the CLI
// writes the .onnx and, beside it, the evaluation samples with the engine's
// scores and composed answers; the runtime must give the same argmax on every
// sample and the same scores to 1e-4.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-web';
import { BIN, OUT, ROOT, compositionFile } from './harness.mjs';

ort.env.wasm.numThreads = 1;
const DIR = join(OUT, 'onnx');
mkdirSync(DIR, { recursive: true });

/** A float32 little-endian .npy (as `npz::write_npy_f32` writes it): {shape, data}. */
function readNpy(path) {
  const b = readFileSync(path);
  assert.equal(b.subarray(0, 6).toString('latin1'), '\x93NUMPY');
  const len = b.readUInt16LE(8);
  const header = b.subarray(10, 10 + len).toString('latin1');
  assert.match(header, /'descr': '<f4'/);
  const shape = header.match(/'shape': \(([^)]*)\)/)[1].split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const bytes = b.subarray(10 + len);
  const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  return { shape, data };
}

/** Exports with the CLI, runs the graph, compares with the engine. */
async function check(name, args) {
  const out = join(DIR, `${name}.onnx`);
  const prefix = join(DIR, name);
  const log = execFileSync(BIN, ['export', ...args, '--softmax', '--out', out, '--expected', prefix], { cwd: ROOT, encoding: 'utf8' });
  const samples = readNpy(`${prefix}.samples.npy`);
  const scores = readNpy(`${prefix}.scores.npy`);
  const answers = readNpy(`${prefix}.answers.npy`);
  const [n, k] = scores.shape;
  const session = await ort.InferenceSession.create(readFileSync(out));
  assert.deepEqual(session.outputNames, ['scores', 'argmax', 'softmax']);
  const tokens = session.inputMetadata?.[0]?.type === 'int64';
  const input = tokens
    ? new ort.Tensor('int64', BigInt64Array.from(samples.data, (v) => BigInt(v)), samples.shape)
    : new ort.Tensor('float32', samples.data, samples.shape);
  const r = await session.run({ input });
  assert.deepEqual(r.scores.dims, [n, k]);
  assert.deepEqual(r.argmax.dims, [n]);
  let worst = 0;
  for (let i = 0; i < n * k; i++) worst = Math.max(worst, Math.abs(r.scores.data[i] - scores.data[i]));
  // A sample whose two best engine scores are closer than the scores' tolerance is a tie either
  // runtime may break its own way (float sums in another order); every other answer must agree.
  const gap = (i) => {
    const row = [...scores.data.subarray(i * k, (i + 1) * k)].sort((x, y) => y - x);
    return k > 1 ? row[0] - row[1] : Infinity;
  };
  const differ = [...r.argmax.data].map((a, i) => (Number(a) !== answers.data[i] ? i : -1)).filter((i) => i >= 0);
  const ties = differ.filter((i) => gap(i) < 1e-4).length;
  const wrong = differ.length - ties;
  // The softmax rows are distributions whose argmax is the scores' (σ is monotonic) away from ties.
  for (let i = 0; i < n; i++) {
    let sum = 0;
    for (let j = 0; j < k; j++) sum += r.softmax.data[i * k + j];
    assert.ok(Math.abs(sum - 1) < 1e-4, `softmax row ${i} sums to ${sum}`);
  }
  console.log(`# ${name}: ${n} samples × ${k} modules, max |Δscore| ${worst.toExponential(2)}, argmax mismatches ${wrong} (+ ${ties} ties within 1e-4); ${log.trim()}`);
  assert.equal(wrong, 0, `${name}: onnxruntime's argmax differs from the engine's composed answer on ${wrong} of ${n} samples`);
  assert.ok(worst < 1e-4, `${name}: scores differ by up to ${worst}`);
  session.release?.();
}

const digits = ['--data', 'data/digits.npz'];

test('dense composition of two models (digits_mlp 0–4, digits_mlp_b 5–9)', () =>
  check('two_mlps', [compositionFile('two_mlps', { a: ['models/digits_mlp.keras', 'data/digits.npz'], b: ['models/digits_mlp_b.keras', 'data/digits.npz'] },
    [['a', ['0', '1', '2', '3', '4']], ['b', ['5', '6', '7', '8', '9']]])]));

test("the faulty model with its 7-module replaced from the 1-vs-7 model (another data set)", () =>
  check('faulty_7', [compositionFile('faulty_7', { faulty: ['models/digits_mlp_faulty.keras', 'data/digits.npz'], small: ['models/digits_1v7.keras', 'data/digits_1v7.npz'] },
    [['faulty', ['0', '1', '2', '3', '4', '5', '6']], ['small', ['7']], ['faulty', ['8', '9']]])]));

test('reference mode (intersection masks), three classes', () =>
  check('reference', ['models/digits_mlp.keras', ...digits, '--mode', 'reference', '--samples', '300', '--classes', '1,7,9']));

// On the bundled data TI lifts nearly every clip; this saved module set clips on purpose (tests/export.rs writes it).
test('clipped negative weights (a saved reference-mode module set with clipped units)', () =>
  check('clipped', ['tests/fixtures/export/digits_1v7_clipped.remodule', '--data', 'data/digits_1v7.npz']));

test('CNN composition', () => check('cnn', ['models/digits_cnn.keras', ...digits]));

test('CNN composition backtracked to the input (MC-BI, δ 0.2)', () =>
  check('cnn_mcbi', ['models/digits_cnn.keras', ...digits, '--technique', 'mc-bi', '--delta', '0.2', '--samples', '300']));

test('modules pruned by class relevance: calibrated margins (MLP and CNN)', async () => {
  await check('relevance_mlp', ['models/digits_mlp.keras', ...digits, '--strength', '0.35']);
  await check('relevance_cnn', ['models/digits_cnn.keras', ...digits, '--strength', '0.25', '--samples', '300']);
});

test('residual CNN composition (Add, BatchNorm, global pooling)', () => check('resnet', ['models/digits_resnet.keras', ...digits]));

test('LSTM language-ID composition (class relevance removes units; calibrated margins)', () => check('lstm', ['models/lang_a_lstm.keras', '--data', 'data/lang_a.npz']));

test('LSTM language-ID composition, the papers\' modules (the ICSE\'23 removal)', () => check('lstm_reference', ['models/lang_a_lstm.keras', '--data', 'data/lang_a.npz', '--strength', '0']));

test('GRU language-ID composition', () => check('gru', ['models/lang_a_gru.keras', '--data', 'data/lang_a.npz']));

test('LSTM and GRU per-gate compositions (removed gate columns zeroed in W, R and B)', async () => {
  await check('lstm_gates', ['models/lang_a_lstm.keras', '--data', 'data/lang_a.npz', '--gates', '--strength', '0']);
  await check('gru_gates', ['models/lang_a_gru.keras', '--data', 'data/lang_a.npz', '--gates', '--strength', '0']);
});

test('modules from two data sets (digits and clothing)', () =>
  check('two_datasets', [compositionFile('two_datasets', { digits: ['models/digits_cnn.keras', 'data/digits.npz'], clothing: ['models/clothing_cnn.keras', 'data/clothing.npz'] },
    [['digits', ['0', '1']], ['clothing', ['Bag', 'Ankle boot']]])]));

// The layers of ordinary Keras code (tests/fixtures/layers): GELU, swish, softplus, ELU and hard
// sigmoid; GlobalMaxPooling2D; Normalization and Rescaling feeding on raw u8 data; float data;
// an explicit input map — decomposed (with class relevance, so units are removed), exported, run.
test('the new layers and input maps export exactly', async () => {
  const L = 'tests/fixtures/layers';
  await check('acts_mlp', [`${L}/acts_mlp.keras`, '--data', `${L}/digits_float.npz`, '--strength', '0.35', '--samples', '100']);
  await check('pad_concat', [`${L}/pad_concat_cnn.keras`, '--data', `${L}/digits_float.npz`, '--strength', '0.2', '--samples', '100']);
  await check('pad_concat_mcbi', [`${L}/pad_concat_cnn.keras`, '--data', `${L}/digits_float.npz`, '--technique', 'mc-bi', '--delta', '0.2', '--samples', '100']);
  await check('prelu', [`${L}/prelu_cnn.k2.h5`, '--data', `${L}/digits_float.npz`, '--strength', '0.25', '--samples', '100']);
  await check('gmp_cnn', [`${L}/gmp_cnn.keras`, '--data', `${L}/digits_float.npz`, '--strength', '0.2', '--samples', '100']);
  await check('norm_mlp', [`${L}/norm_mlp.k2.h5`, '--data', `${L}/digits_u8.npz`, '--strength', '0.35', '--samples', '100']);
  await check('rescaling_onnx', [`${L}/rescaling_cnn.k2.onnx`, '--data', `${L}/digits_u8.npz`, '--samples', '100']);
  await check('given_map', [`${L}/float_cnn.keras`, '--data', `${L}/digits_u8.npz`, '--scale', '0.00392156862745098', '--offset', '-0.01', '--samples', '100']);
});

// Conv1D and the 1-D pools (2-D ops of height 1 between Reshapes), DepthwiseConv2D (group = C)
// and SeparableConv2D, a ZeroPadding2D tf2onnx wrote as Pad: from Keras and from tf2onnx's copies.
test('1-D, depthwise and separable convolutions and padding export exactly', async () => {
  const L = 'tests/fixtures/layers';
  const data = ['--data', `${L}/digits_float.npz`, '--samples', '100'];
  await check('conv1d_mcbi', [`${L}/conv1d_cnn.keras`, ...data, '--technique', 'mc-bi', '--delta', '0.2']);
  await check('conv1d_onnx', [`${L}/conv1d_cnn.k2.onnx`, ...data, '--technique', 'mc-bi', '--delta', '0.2']);
  await check('dwsep_mcbi', [`${L}/dwsep_cnn.keras`, ...data, '--technique', 'mc-bi', '--delta', '0.2', '--strength', '0.2']);
  await check('dwsep_onnx', [`${L}/dwsep_cnn.k2.onnx`, ...data]);
  // PyTorch's Conv1d on [N, C, L]: the first one a 2-D convolution of all C rows.
  await check('torch_conv1d', ['tests/fixtures/torch/conv1d.onnx', ...data, '--technique', 'mc-bi', '--delta', '0.2']);
  // Not pad_pool_cnn: onnxruntime-web 1.30 fuses a Pad into the MaxPool after it and then refuses
  // its own pads (≥ the window); onnxruntime 1.32 (Python) runs that export and agrees.
});

test('a Keras 2 LSTM with hard-sigmoid gates exports them as HardSigmoid (activation_alpha 0.2, beta 0.5)', () =>
  check('hsig_lstm', ['tests/fixtures/layers/hsig_lstm.k2.h5', '--data', 'data/lang_a.npz']));

// Keras Bidirectional: the backward half exports as direction="reverse" (Y at each state's own
// step, Y_h the state after step 0), merged by Concat, Add, Add × ½ or Mul.
test('Bidirectional LSTM (concat), GRU (sum), SimpleRNN (ave) and LSTM (mul) export exactly', async () => {
  await check('bidir_lstm', ['tests/fixtures/layers/bidir_lstm.keras', '--data', 'data/lang_a.npz']);
  await check('bidir_seq', ['tests/fixtures/layers/bidir_seq.k2.h5', '--data', 'data/lang_a.npz']);
  await check('bidir_mul', ['tests/fixtures/layers/bidir_mul.keras', '--data', 'data/lang_a.npz']);
  // PyTorch's bidirectional LSTM read by out[:, -1] (the backward layer's state after one step) and GRU by h_n.
  await check('torch_bilstm', ['tests/fixtures/torch/bilstm.onnx', '--data', 'data/lang_a.npz']);
  await check('torch_bigru', ['tests/fixtures/torch/bigru.onnx', '--data', 'data/lang_a.npz']);
});
