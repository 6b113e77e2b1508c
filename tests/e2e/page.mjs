// Page helpers shared by the share-link and exercise tests.

/** Opens `url` and waits until a composition is shown. */
export async function open(page, url) {
  await page.goto(url);
  await page.locator('#app[data-composed]').waitFor({ timeout: 90000 });
  await page.locator('#share-btn:not([disabled])').waitFor({ timeout: 90000 });
}

/** Runs `act` and waits until the page has recomposed (and rendered) after it. */
export async function composedChange(page, act) {
  const before = await page.evaluate(() => Number(document.body.dataset.composes ?? 0));
  await act();
  await page.waitForFunction((b) => Number(document.body.dataset.composes ?? 0) > b, before, { timeout: 60000 });
}

export async function toggle(page, cls) {
  await composedChange(page, () => page.locator(`.module[data-class="${cls}"] .toggle`).click());
}

export async function setSource(page, cls, model) {
  await composedChange(page, () => page.locator(`.module[data-class="${cls}"] select.source`).selectOption(model));
  await page.waitForFunction(([c, m]) => document.querySelector(`.module[data-class="${c}"] select.source`)?.value === m, [cls, model]);
}

/** Adds the module for `className` of `model` (another data set) with the add-module row. */
export async function addModule(page, model, className) {
  await page.locator('#add-model').selectOption(model);
  await page.locator('#add-class').selectOption({ label: className });
  const n = await page.locator('.module').count();
  await composedChange(page, () => page.locator('#add-btn').click());
  await page.waitForFunction((k) => document.querySelectorAll('.module').length === k + 1, n);
}

/** Waits until the try-it answer and scores reflect the current composition. */
export async function tryItSettled(page) {
  await page.waitForFunction(() => {
    const on = document.querySelectorAll('.module:not(.off)').length;
    return document.getElementById('answer').textContent !== '–' && document.querySelectorAll('#try-scores li').length === on;
  });
  await page.waitForTimeout(150);
}

/** Everything a user sees of the playground state, as comparable data. */
export function pageState(page) {
  return page.evaluate(() => {
    const text = (id) => document.getElementById(id).textContent;
    const panel = document.getElementById('exercise-panel');
    return {
      model: document.getElementById('model-picker').value,
      info: document.querySelector('#model-info strong')?.textContent,
      baseline: text('model-acc'), baselineLabel: text('model-acc-label'), composed: text('composed-acc'), delta: text('delta'), top5: text('composed-top5'),
      cards: [...document.querySelectorAll('.module')].map((c) => [c.dataset.class, c.classList.contains('off') ? 'off' : 'in', c.querySelector('select.source').value]),
      matrixHead: [...document.querySelectorAll('#matrix th')].map((t) => t.textContent).join('|'),
      matrix: [...document.querySelectorAll('#matrix td')].map((t) => t.textContent).join('|'),
      answer: text('answer'),
      scores: [...document.querySelectorAll('#try-scores li')].map((li) => li.textContent).join('|'),
      sample: [...document.querySelectorAll('#samples button')].findIndex((b) => b.getAttribute('aria-pressed') === 'true'),
      exercise: panel.dataset.exercise ?? null,
      solved: panel.dataset.solved ?? null,
      goal: [...document.querySelectorAll('#ex-goal li')].map((li) => li.textContent).join('|'),
      hidden: document.body.dataset.hide ?? '',
    };
  });
}

/** Clicks "Copy link" and returns the link shown in the share box. */
export async function copyLink(page) {
  await page.evaluate(() => { delete document.getElementById('share-box').dataset.ready; });
  await page.locator('#share-btn').click();
  await page.locator('#share-box[data-ready]').waitFor();
  return page.locator('#share-url').inputValue();
}
