// The Cancel button beside the progress bar. A decomposition runs to the end
// inside the worker, so cancelling restarts the engine (Engine.restart): the
// call under way rejects with CancelledError, the page keeps the state it had
// before it, and the fresh worker gets that state's models back.

/**
 * `engine`: the Engine; `button`, `note`: the Cancel button and a status line;
 * `live(modelId)`: does the page still use this model (after the cancelled
 * call unwound); `progress(label, {cancellable})`: shows the bar, returns a
 * setter; `done()`: hides it; `restored()`: re-renders the kept state;
 * `onError(e)`: shows an error.
 */
export function wireCancel({ engine, button, note, live, progress, done, restored, onError }) {
  button.addEventListener('click', async () => {
    if (button.disabled) return;
    button.disabled = true;
    document.body.dataset.cancel = 'restoring';
    note.hidden = false;
    note.textContent = 'Decomposition cancelled — restoring the models you had…';
    let set = () => {};
    const restarting = engine.restart(live, (f) => set(f));
    // The cancelled call hides the bar as it unwinds; show the replay's own.
    await new Promise((r) => setTimeout(r, 0));
    set = progress('Restoring the engine after cancelling…', { cancellable: false });
    try {
      await restarting;
      done();
      await restored();
      note.textContent = 'Decomposition cancelled. Everything you had before is kept.';
      document.body.dataset.cancel = 'done';
    } catch (e) {
      done();
      note.textContent = 'Decomposition cancelled, but the engine could not be restored: reload the page.';
      document.body.dataset.cancel = 'failed';
      onError(e);
    } finally {
      button.disabled = false;
    }
  });
}
