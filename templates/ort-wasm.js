/* dinoclust query: onnxruntime-web {{ version }}'s ort-wasm-simd-threaded.wasm (MIT, Microsoft), as
   base64. The page hands these bytes to the runtime (ort.env.wasm.wasmBinary): from file:// a
   fetch() of the .wasm is refused, a script that sets a global is not. */
window.DINOCLUST_ORT_WASM = {{ data|tojson }};
