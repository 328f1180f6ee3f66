// The first command, once the page is loaded.
window.__TAURI_INTERNALS__.invoke("ready");
