/* dinoclust query: onnxruntime-web {{ version }}'s ort-wasm-simd-threaded.mjs (MIT, Microsoft), as
   text. The page imports it from a blob: URL (ort.env.wasm.wasmPaths.mjs): from file:// a module
   import of a local file is refused. */
window.DINOCLUST_ORT_GLUE = {{ text|tojson }};
