// Classroom exercises, solved through the page with clicks (and keys): the goal
// panel turns green only when the goal holds; progress survives a reload;
// a teacher's exercise travels as a link.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cli, start, shot } from './harness.mjs';
import { addModule, composedChange, copyLink, open, pageState, setSource, toggle } from './page.mjs';

let env;
before(async () => { env = await start(); });
after(async () => { await env?.close(); });

async function startExercise(page, id) {
  await composedChange(page, () => page.locator(`.ex-item[data-exercise="${id}"]`).click());
  await page.locator(`#exercise-panel[data-exercise="${id}"]`).waitFor();
}
const solved = (page) => page.locator('#exercise-panel').getAttribute('data-solved');

test('fix the faulty 7-module: green only after the 7 is replaced, and only with one borrowed module', async () => {
  const page = await env.newPage();
  await open(page, env.url);
  await startExercise(page, 'fix-faulty-7');
  assert.equal(await page.locator('#model-picker').inputValue(), 'digits_mlp_faulty.keras');
  assert.equal(await solved(page), 'false');
  assert.equal(await page.locator('#exercise-panel').evaluate((e) => e.classList.contains('solved')), false);
  assert.match(await page.locator('#ex-goal li').first().textContent(), /✗.*Class 7 recognised ≥ 80\.0%.*\(now 2\.0%\)/);
  // Borrowing the 3 as well breaks "at most 1 module from MLP B".
  await setSource(page, '3', 'digits_mlp_b.keras');
  await setSource(page, '7', 'digits_mlp_b.keras');
  assert.equal(await solved(page), 'false');
  assert.match(await page.locator('#ex-goal li[data-check="modules_from"]').textContent(), /✗.*now 2/);
  await setSource(page, '3', 'digits_mlp_faulty.keras');
  assert.equal(await solved(page), 'true');
  assert.equal(await page.locator('#exercise-panel').evaluate((e) => e.classList.contains('solved')), true);
  assert.equal(await page.locator('#composed-acc').textContent(), '96.7%');
  assert.match(await page.locator('#ex-goal li').first().textContent(), /✓.*\(now 93\.0%\)/);
  assert.equal(await page.locator('#ex-status').textContent(), 'Solved ✓');
  await shot(page, 'exercise-fix-7-solved');
  // A grading script gets the same verdict from the link (remodule exercise check).
  const graded = cli('exercise', 'check', '-', await copyLink(page), '--json');
  assert.equal(graded.exercise, 'fix-faulty-7');
  assert.deepEqual([graded.solved, graded.top1.toFixed(3)], [true, '0.967']);
  // Undoing the fix turns it red again, in the page and for the CLI (exit code 3).
  await setSource(page, '7', 'digits_mlp_faulty.keras');
  assert.equal(await solved(page), 'false');
  const undone = await copyLink(page);
  assert.throws(() => cli('exercise', 'check', '-', undone, '--json'), (e) => e.status === 3 && JSON.parse(e.stdout).solved === false);
  // Progress is kept in the browser.
  await page.waitForTimeout(300);
  await page.reload();
  await page.locator('#app[data-composed]').waitFor({ timeout: 90000 });
  assert.equal(await page.locator('.ex-item[data-exercise="fix-faulty-7"] .tick').textContent(), '✓');
  assert.equal(await page.locator('.ex-item[data-exercise="reuse-2-4-9"] .tick').textContent(), '○');
  assert.deepEqual(env.errors, []);
});

test('intra-dataset reuse: a 2-4-9 classifier beats the MLP with one CNN module', async () => {
  const page = await env.newPage();
  await open(page, env.url);
  await startExercise(page, 'reuse-2-4-9');
  for (const c of ['0', '1', '3', '5', '6', '7', '8']) await toggle(page, c);
  assert.equal(await page.locator('#composed-acc').textContent(), '98.7%');
  assert.equal(await page.locator('#model-acc-label').textContent(), 'Model · same 3 classes');
  assert.equal(await solved(page), 'false');
  await setSource(page, '2', 'digits_cnn.keras');
  assert.equal(await page.locator('#composed-acc').textContent(), '99.3%');
  assert.equal(await solved(page), 'true');
  // A second CNN module is one too many, whatever the accuracy.
  await setSource(page, '9', 'digits_cnn.keras');
  assert.equal(await solved(page), 'false');
  await setSource(page, '9', 'digits_mlp.keras');
  assert.equal(await solved(page), 'true');
  // An extra class breaks "exactly the classes 2, 4, 9".
  await toggle(page, '7');
  assert.equal(await solved(page), 'false');
  assert.match(await page.locator('#ex-goal li[data-check="accuracy"]').textContent(), /not wanted 7/);
  await shot(page, 'exercise-reuse-249');
});

test('remove a class, with the keyboard only; the exercise hides the upload control', async () => {
  const page = await env.newPage();
  await open(page, env.url);
  const item = page.locator('.ex-item[data-exercise="remove-shirt"]');
  await item.focus();
  await composedChange(page, () => page.keyboard.press('Enter'));
  await page.locator('#exercise-panel[data-exercise="remove-shirt"]').waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), 'ex-title');
  assert.equal(await page.locator('#composed-acc').textContent(), '87.2%');
  assert.equal(await solved(page), 'false');
  assert.equal(await page.locator('label.upload').isVisible(), false);
  assert.equal(await page.locator('#model-picker').isVisible(), true);
  await page.locator('.module[data-class="Shirt"] .toggle').focus();
  await composedChange(page, () => page.keyboard.press('Space'));
  assert.equal(await page.locator('#composed-acc').textContent(), '92.2%');
  assert.equal(await solved(page), 'true');
  await shot(page, 'exercise-remove-shirt');
  // Closing the exercise shows the control again.
  await page.locator('#ex-close').click();
  assert.equal(await page.locator('label.upload').isVisible(), true);
  assert.equal(await page.locator('#exercise-panel').getAttribute('data-solved'), null);
});

test('inter-dataset reuse: digit and clothing modules composed through the add-module row', async () => {
  const page = await env.newPage();
  await open(page, env.url);
  await startExercise(page, 'digits-and-clothing');
  for (const c of ['2', '3', '4', '5', '6', '7', '8', '9']) await toggle(page, c);
  assert.equal(await solved(page), 'false');
  assert.equal(await page.locator('#add-module').isVisible(), true);
  await addModule(page, 'clothing_mlp.keras', 'Sneaker');
  assert.equal(await solved(page), 'false');
  await addModule(page, 'clothing_mlp.keras', 'Bag');
  const s = await pageState(page);
  assert.deepEqual(s.cards.slice(10), [['clothing:Sneaker', 'in', 'clothing_mlp.keras'], ['clothing:Bag', 'in', 'clothing_mlp.keras']]);
  // The engine's own figure for this composition (docs/FIDELITY.md: 0.9975).
  assert.equal(s.composed, '99.8%');
  assert.equal(await solved(page), 'true');
  // Added classes are no longer offered; taking one off the board offers it again.
  assert.equal(await page.locator('#add-class option', { hasText: 'Bag' }).count(), 0);
  await composedChange(page, () => page.locator('.module[data-class="clothing:Bag"] .drop').click());
  assert.equal(await solved(page), 'false');
  assert.equal(await page.locator('#add-class option', { hasText: 'Bag' }).count(), 1);
  await shot(page, 'exercise-inter-dataset');
});

test("teacher mode: an exercise made from the current state reaches a student's fresh page as a link", async () => {
  const teacher = await env.newPage();
  await open(teacher, env.url);
  await teacher.locator('#model-picker').selectOption('digits_mlp_faulty.keras');
  await teacher.waitForFunction(() => document.querySelector('#model-info strong')?.textContent.includes('faulty'));
  await setSource(teacher, '7', 'digits_mlp.keras');
  await toggle(teacher, '5');
  await teacher.locator('#teacher summary').click();
  assert.equal(await teacher.locator('#t-goal li', { hasText: 'This is the starting state' }).count(), 0);
  await teacher.locator('#t-title').fill('Fix the 7s, drop the 5s');
  await teacher.locator('#t-story').fill('The 5s are not needed.');
  await teacher.locator('#t-hints').fill('Use the good MLP\nSwitch one module out');
  await teacher.locator('#t-hide input[value="matrix"]').check();
  const goal = await teacher.locator('#t-goal li').allTextContents();
  assert.equal(goal.length, 3);
  assert.match(goal[0], /Composed accuracy ≥ 95\.0% with exactly the classes 0, 1, 2, 3, 4, 6, 7, 8, 9/);
  assert.match(goal[1], /module for class 7 comes from Digits · dense MLP$/);
  assert.match(goal[2], /No module for class 5/);
  await shot(teacher, 'teacher-form');
  await teacher.locator('#t-make').click();
  await teacher.locator('#share-box[data-ready]').waitFor();
  const link = await teacher.locator('#share-url').inputValue();
  assert.equal(await teacher.locator('#share-label').textContent(), 'Exercise link for your students');

  const student = await env.newPage();
  await open(student, link);
  await student.locator('body[data-link="opened"]').waitFor();
  assert.equal(await student.locator('#ex-title').textContent(), 'Fix the 7s, drop the 5s');
  assert.match(await student.locator('.ex-item[aria-pressed="true"]').textContent(), /From the link: Fix the 7s/);
  assert.equal(await student.locator('#matrix-panel').isVisible(), false);
  assert.equal(await student.locator('#ex-hint-list li').count(), 2);
  // The student starts from the faulty model's own modules.
  assert.equal(await student.locator('#model-picker').inputValue(), 'digits_mlp_faulty.keras');
  assert.equal(await student.locator('.module.off').count(), 0);
  assert.equal(await student.locator('#exercise-panel').getAttribute('data-solved'), 'false');
  await setSource(student, '7', 'digits_mlp.keras');
  assert.equal(await student.locator('#exercise-panel').getAttribute('data-solved'), 'false');
  await toggle(student, '5');
  assert.equal(await student.locator('#exercise-panel').getAttribute('data-solved'), 'true');
  await shot(student, 'teacher-exercise-solved');
  // The link's exercise stays in the list, solved, after closing it and reloading.
  await student.locator('#ex-close').click();
  await student.waitForTimeout(300);
  await student.reload();
  await student.locator('body[data-restored="true"]').waitFor({ timeout: 90000 });
  const item = student.locator('.ex-item', { hasText: 'From the link: Fix the 7s, drop the 5s' });
  assert.equal(await item.locator('.tick').textContent(), '✓');
  assert.equal(await student.locator('#matrix-panel').isVisible(), true);
  await composedChange(student, () => item.click());
  assert.equal(await student.locator('#exercise-panel').getAttribute('data-solved'), 'false');
  assert.equal(await student.locator('#matrix-panel').isVisible(), false);
  assert.deepEqual(env.errors, []);
});

test('add a language to the RNN: Dutch from set B, with set B\'s English and German modules', async () => {
  const page = await env.newPage();
  await open(page, env.url);
  await startExercise(page, 'add-dutch');
  assert.equal(await page.locator('#model-picker').inputValue(), 'lang_a_lstm.keras');
  await addModule(page, 'lang_b_lstm.keras', 'Dutch');
  // Just adding Dutch: set A's modules take most Dutch snippets (docs/EXERCISES.md: 0.325).
  assert.equal(await solved(page), 'false');
  assert.match(await page.locator('#ex-goal li[data-check="class_accuracy"]').textContent(), /✗.*\(now 32\.5%\)/);
  await toggle(page, 'English');
  await toggle(page, 'German');
  await addModule(page, 'lang_b_lstm.keras', 'English');
  assert.equal(await solved(page), 'false');
  await addModule(page, 'lang_b_lstm.keras', 'German');
  assert.equal(await solved(page), 'true');
  assert.equal(await page.locator('#composed-acc').textContent(), '93.4%');
  assert.match(await page.locator('#ex-goal li[data-check="class_accuracy"]').textContent(), /✓.*\(now 90\.0%\)/);
  await shot(page, 'exercise-add-dutch');
  // Set A's English back in as well: two English modules, and Dutch drops again.
  await toggle(page, 'English');
  assert.equal(await solved(page), 'false');
  assert.deepEqual(env.errors, []);
});

test('inter-dataset reuse with module update: the switch lifts French over the goal', async () => {
  const page = await env.newPage();
  await open(page, env.url);
  await startExercise(page, 'languages-module-update');
  for (const c of ['German', 'Spanish', 'Italian']) await toggle(page, c);
  await addModule(page, 'lang_b_lstm.keras', 'Portuguese');
  await addModule(page, 'lang_b_lstm.keras', 'Polish');
  // At the default strength the modules are pruned by class relevance: the page says module update needs strength 0.
  assert.equal(await page.locator('#update-note').isVisible(), true);
  assert.equal(await page.locator('#update-box').isDisabled(), true);
  await composedChange(page, () => page.locator('#s-strength').fill('0'));
  await page.waitForFunction(() => document.getElementById('composed-acc').textContent === '89.3%', null, { timeout: 60000 });
  assert.equal(await page.locator('#update-note').isVisible(), false);
  assert.equal(await solved(page), 'false');
  assert.match(await page.locator('#ex-goal li[data-check="module_update"]').textContent(), /✗.*Module update is on.*\(now off\)/);
  assert.equal(await page.locator('#update-row').isVisible(), true);
  await composedChange(page, () => page.locator('#update-box').check());
  assert.equal(await page.locator('body').getAttribute('data-update'), 'true');
  assert.equal(await page.locator('#composed-acc').textContent(), '91.1%');
  assert.equal(await solved(page), 'true');
  await shot(page, 'exercise-module-update');
  await composedChange(page, () => page.locator('#update-box').uncheck());
  assert.equal(await page.locator('#composed-acc').textContent(), '89.3%');
  assert.equal(await solved(page), 'false');
  assert.deepEqual(env.errors, []);
});

// Seed 002's options 2–4 for the faulty 7-module (option 1 is fix-faulty-7 above).
test('fix the 7 with the small 1-vs-7 model: its 7-module added from the other data set, the faulty one out', async () => {
  const page = await env.newPage();
  await open(page, env.url);
  await startExercise(page, 'fix-7-small-model');
  assert.equal(await page.locator('#model-picker').inputValue(), 'digits_mlp_faulty.keras');
  await addModule(page, 'digits_1v7.keras', '7');
  // Both 7-modules in: the goal's 7 is still the faulty model's.
  assert.equal(await solved(page), 'false');
  assert.match(await page.locator('#ex-goal li[data-check="module_from"]').textContent(), /✗.*now from Digits · faulty MLP/);
  await toggle(page, '7');
  assert.equal(await solved(page), 'true');
  assert.equal(await page.locator('#composed-acc').textContent(), '82.8%');
  assert.match(await page.locator('#ex-goal li[data-check="class_accuracy"]').textContent(), /✓.*\(now 77\.0%\)/);
  await shot(page, 'exercise-fix-7-small-model');
  // Taking the small model's 7 off the board leaves no module for 7.
  await composedChange(page, () => page.locator('.module[data-class="digits_1v7:7"] .drop').click());
  assert.equal(await solved(page), 'false');
  assert.deepEqual(env.errors, []);
});

test('fix the 7 by removing it: one click, 97.2% on the other nine digits', async () => {
  const page = await env.newPage();
  await open(page, env.url);
  await startExercise(page, 'fix-7-remove');
  assert.equal(await page.locator('#composed-acc').textContent(), '87.7%');
  assert.equal(await solved(page), 'false');
  await toggle(page, '7');
  assert.equal(await page.locator('#composed-acc').textContent(), '97.2%');
  assert.equal(await solved(page), 'true');
  await toggle(page, '7');
  assert.equal(await solved(page), 'false');
  assert.deepEqual(env.errors, []);
});

test('fix the 7 by re-checking answers of class 1 with MLP B: watching 7 does not help, watching 1 does', async () => {
  const page = await env.newPage();
  await open(page, env.url);
  await startExercise(page, 'fix-7-verify');
  assert.equal(await page.locator('#verify-row').isVisible(), true);
  assert.equal(await page.locator('#verify-box').isChecked(), false);
  assert.match(await page.locator('#ex-goal li[data-check="verified"]').textContent(), /✗.*\(nothing checked\)/);
  await composedChange(page, () => page.locator('#verify-model').selectOption('digits_mlp_b.keras'));
  await composedChange(page, () => page.locator('#verify-class').selectOption('7'));
  await composedChange(page, () => page.locator('#verify-box').check());
  // The faulty model answers 1 for the 7s: checking its 7 answers changes nothing.
  assert.equal(await page.locator('body').getAttribute('data-verify'), '7 digits_mlp_b.keras');
  assert.equal(await page.locator('#composed-acc').textContent(), '87.7%');
  assert.equal(await solved(page), 'false');
  assert.match(await page.locator('#ex-goal li[data-check="verified"]').textContent(), /✗.*now class 7 by/);
  await composedChange(page, () => page.locator('#verify-class').selectOption('1'));
  assert.equal(await page.locator('#composed-acc').textContent(), '97.0%');
  assert.match(await page.locator('#ex-goal li[data-check="class_accuracy"]').textContent(), /✓.*\(now 94\.0%\)/);
  assert.equal(await solved(page), 'true');
  await shot(page, 'exercise-fix-7-verify');
  await composedChange(page, () => page.locator('#verify-box').uncheck());
  assert.equal(await page.locator('#composed-acc').textContent(), '87.7%');
  assert.equal(await solved(page), 'false');
  assert.deepEqual(env.errors, []);
});
