// The page: load the export named by ?model= (default: model/ beside this page), then stream completions.
// ?prompt=...&n=...&temperature=...&auto=1 fill the form and generate at once (what the browser test uses).
// When a generation ends, document.body.dataset.state is "done" and window.generated holds the token ids.
import * as ort from "onnxruntime-web";
import { encodePrompt, generate, loadModel } from "./generate.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const base = new URL(params.get("model") || "model/", location.href);

ort.env.wasm.wasmPaths = new URL("../node_modules/onnxruntime-web/dist/", import.meta.url).href;
ort.env.wasm.numThreads = 1; // threads need cross-origin isolation headers a plain static server does not send

async function fetchOk(name) {
  const response = await fetch(new URL(name, base));
  if (!response.ok) throw new Error(`${new URL(name, base)}: HTTP ${response.status} (export a model with --to onnx)`);
  return response;
}

function fail(err) {
  $("status").textContent = `error: ${err.message}`;
  document.body.dataset.state = "error";
}

let model;
async function run() {
  $("go").disabled = true;
  document.body.dataset.state = "generating";
  const prompt = $("prompt").value;
  const ids = encodePrompt(model, prompt);
  const options = { maxNewTokens: Number($("tokens").value), temperature: Number($("temperature").value),
                    topK: Number($("topk").value), seed: Date.now() % 1e9 };
  const out = $("output");
  out.replaceChildren(Object.assign(document.createElement("span"), { className: "prompt", textContent: prompt }));
  const text = out.appendChild(document.createElement("span"));
  const tokens = [];
  const start = performance.now();
  for await (const token of generate(model, ids, options)) {
    tokens.push(token);
    const decoded = model.tokenizer.decode(tokens);
    if (!decoded.endsWith("\uFFFD")) text.textContent = decoded; // wait for a whole multi-byte character
  }
  text.textContent = model.tokenizer.decode(tokens);
  const seconds = (performance.now() - start) / 1000;
  $("status").textContent = `${tokens.length} tokens in ${seconds.toFixed(2)} s (${(tokens.length / seconds).toFixed(0)} tok/s), ` +
    `${model.config.style} model, context ${model.config.context}`;
  window.generated = tokens;
  window.promptIds = ids;
  document.body.dataset.state = "done";
  $("go").disabled = false;
}

try {
  model = await loadModel({
    ort,
    readJson: async (name) => (await fetchOk(name)).json(),
    readBytes: async (name) => new Uint8Array(await (await fetchOk(name)).arrayBuffer()),
  });
  $("status").textContent = `ready: ${model.config.style} model, ${model.config.n_layer} layers, vocabulary ` +
    `${model.config.vocab_size}, context ${model.config.context}`;
  document.body.dataset.state = "ready";
  $("go").disabled = false;
  $("go").addEventListener("click", () => run().catch(fail));
  for (const [key, id] of [["prompt", "prompt"], ["n", "tokens"], ["temperature", "temperature"]]) {
    if (params.has(key)) $(id).value = params.get(key);
  }
  if (params.get("auto") === "1") await run();
} catch (err) {
  fail(err);
}
