// Generation with nanochat-next's ONNX export: shared by the web page (onnxruntime-web) and the Node script
// (onnxruntime-node). The ONNX runtime and the file readers are passed in, so this module runs in both.
//
// The export (nanochat-next export --to onnx) is a directory with prefill.onnx, decode.onnx, onnx_config.json
// and the tokenizer (tokenizer.json + tokenizer_config.json). The loop:
//   prefill(prompt ids) -> logits, present_k, present_v, last_embedding
//   repeat: pick a token from the last logits; decode(token, past_k, past_v, prev_embedding) -> the same outputs
// Masks and positions are computed inside the graphs; the cache grows by one position per step.
import { Tokenizer } from "@huggingface/tokenizers";

export async function loadModel({ ort, readJson, readBytes }) {
  const config = await readJson("onnx_config.json");
  if (config.format !== "nanochat-next/onnx" || config.version !== 1) {
    throw new Error(`not a nanochat-next ONNX export (version 1): format ${config.format} version ${config.version}`);
  }
  const tokenizer = new Tokenizer(await readJson("tokenizer.json"), await readJson("tokenizer_config.json"));
  // the runtime's default backend: WebAssembly in a browser, the native CPU library in Node
  const prefill = await ort.InferenceSession.create(await readBytes(config.graphs.prefill));
  const decode = await ort.InferenceSession.create(await readBytes(config.graphs.decode));
  return { ort, config, tokenizer, prefill, decode };
}

// The prompt as our tokenizer encodes it, after <|bos|>. tokenizers.js reads special-token strings typed in the
// text ("<|user_start|>") as the special tokens, as our encode(..., allow_special=True) does.
// Typed text is plain text, special-token names included ("<|assistant_end|>" typed by a user is 7 ordinary
// tokens, as in nanochat-next's sample/chat/serve and nanochat's web chat): tokenizers.js would match such a name
// as the special token, so each one is cut after its "<|" and the pieces encoded apart. Byte-level BPE never
// merges across that point (the split pattern ends a punctuation run there), so the ids are the plain ones.
export function encodePrompt(model, text) {
  const pieces = text.split(/(?<=<\|)(?=[a-z_]+\|>)/);
  const ids = pieces.flatMap((piece) => model.tokenizer.encode(piece, { add_special_tokens: false }).ids);
  return [model.config.bos_id, ...ids];
}

function int64(ort, ids) {
  return new ort.Tensor("int64", BigInt64Array.from(ids.map((t) => BigInt(t))), [1, ids.length]);
}

// A seeded generator (mulberry32): the same seed gives the same samples in every browser.
function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Greedy (temperature 0) or a sample from softmax(logits / temperature) over the top-k.
function pick(logits, offset, vocab, temperature, topK, rand) {
  const row = logits.subarray(offset, offset + vocab);
  if (!temperature) {
    let best = 0;
    for (let i = 1; i < vocab; i++) if (row[i] > row[best]) best = i;
    return best;
  }
  const order = Array.from(row.keys()).sort((a, b) => row[b] - row[a]).slice(0, topK || vocab);
  const weights = order.map((i) => Math.exp((row[i] - row[order[0]]) / temperature));
  let r = rand() * weights.reduce((a, b) => a + b, 0);
  for (let j = 0; j < order.length; j++) if ((r -= weights[j]) <= 0) return order[j];
  return order[order.length - 1];
}

// Yields one token id at a time; stops at a stop token (not yielded), after maxNewTokens, or at the context.
export async function* generate(model, promptIds, { maxNewTokens = 64, temperature = 0, topK = 0, seed = 0 } = {}) {
  const { ort, config, prefill, decode } = model;
  const budget = Math.min(maxNewTokens, config.context - promptIds.length);
  const stops = new Set(config.stop_ids);
  const rand = random(seed);
  let out = await prefill.run({ input_ids: int64(ort, promptIds) });
  let offset = (promptIds.length - 1) * config.vocab_size;
  for (let step = 0; step < budget; step++) {
    const token = pick(out.logits.data, offset, config.vocab_size, temperature, topK, rand);
    if (stops.has(token)) return;
    yield token;
    if (step === budget - 1) return;
    const feeds = { input_ids: int64(ort, [token]), past_k: out.present_k, past_v: out.present_v };
    if (decode.inputNames.includes("prev_embedding")) feeds.prev_embedding = out.last_embedding;
    out = await decode.run(feeds);
    offset = 0;
  }
}
