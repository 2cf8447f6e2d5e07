import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpServer, type ListeningServer } from '../../src/server.js';
import { ADMIN_PASSWORD, createAdmin, type TestAdmin } from '../support/admin.js';
import { useTestApp, type Guest } from '../support/harness.js';
import { temporaryFolder } from '../support/temp.js';

/**
 * The console in a real browser (Debian's chromium, driven by playwright-core): a support agent
 * signs in, finds a user, refunds 5 credits with a reason, sees the ledger entry and the audit row,
 * disables a model and the app's get-models changes. The screenshots in docs/screenshots/ (shown in
 * the README) are taken here: with UPDATE_SCREENSHOTS=1 they replace the committed ones, otherwise
 * they go to a temporary folder so a test run leaves the work tree clean. Without chromium this test
 * fails: .ci/run installs it.
 */

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SCREENSHOTS =
  process.env.UPDATE_SCREENSHOTS === '1'
    ? path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'screenshots')
    : temporaryFolder('rendio-screenshots-');

const t = useTestApp();
let server: ListeningServer | undefined;
let browser: Browser | undefined;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium is not installed at ${CHROMIUM}: apt-get install -y chromium (.ci/run does this), or set CHROMIUM_PATH`);
  }
  server = await startHttpServer(t().app.fetch, { port: 0, hostname: '127.0.0.1', limits: t().services.config.http });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--headless', '--no-sandbox', '--disable-gpu'] });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

const base = () => `http://127.0.0.1:${server!.port}`;

async function getModels() {
  const res = await fetch(`${base()}/functions/v1/get-models`);
  expect(res.status).toBe(200);
  return { etag: res.headers.get('etag')!, ids: ((await res.json()) as { models: { id: string }[] }).models.map((m) => m.id) };
}

async function signIn(page: Page, email: string) {
  await page.goto(`${base()}/admin/login`);
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', ADMIN_PASSWORD);
  await Promise.all([page.waitForURL(`${base()}/admin`), page.click('#login-form button[type=submit]')]);
}

/** The sum of a chart's series, read from the SVG the page shows (each series carries its values). */
async function chartTotal(page: Page, chart: string, series: string): Promise<number> {
  const values = await page.getAttribute(`#${chart} svg g.series[data-series="${series}"]`, 'data-values');
  return (values ?? '').split(',').reduce((n, v) => n + Number(v || 0), 0);
}

/** Whether the page runs off a phone's screen: the document wider than the viewport. */
const pageWidth = async (page: Page) => Number(await page.evaluate('document.documentElement.scrollWidth'));

describe('admin console in Chromium', () => {
  it('sign in (after a wrong password), find a user, refund and claw back with a reason, see the ledger and audit rows; change the app\'s model, warned before its catalogue empties', async () => {
    // Some activity for the dashboard: a delivered video and a failed one.
    await t().startWorker();
    const g: Guest = await t().createGuest();
    for (const prompt of ['a lighthouse in a storm', 'a red kite over hills [sim:fail]']) {
      const job = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt }));
      await t().waitForJob(g.accessToken, job.job_id);
    }
    const admin: TestAdmin = await createAdmin(t(), { email: 'support@rendio.example', signIn: false });

    const page: Page = await browser!.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`${base()}/admin`);
    expect(new URL(page.url()).pathname).toBe('/admin/login');
    // A wrong password shows the form again, with the error and the email kept; the form works.
    await page.fill('input[name=email]', admin.email);
    await page.fill('input[name=password]', 'not the password');
    const [refused] = await Promise.all([page.waitForResponse((r) => r.url() === `${base()}/admin/login` && r.request().method() === 'POST'), page.click('#login-form button[type=submit]')]);
    expect(refused.status()).toBe(401);
    await page.waitForSelector('#login-form');
    expect(await page.textContent('#error')).toContain('ERR_4025');
    expect(await page.inputValue('#login-form input[name=email]')).toBe(admin.email);
    expect(await page.inputValue('#login-form input[name=password]')).toBe('');
    await page.fill('input[name=password]', ADMIN_PASSWORD);
    await Promise.all([page.waitForURL(`${base()}/admin`), page.click('#login-form button[type=submit]')]);
    await page.waitForSelector('#jobs-by-status');

    // Find the user by the start of their device id, typed in lower case (iOS's ids are upper case).
    await page.click('header a[href="/admin/users"]');
    await page.fill('#search-form input[name=q]', g.deviceId.toLowerCase().slice(0, 8));
    await Promise.all([page.waitForURL(/\/admin\/users\?q=/), page.click('#search-form button')]);
    expect(await page.locator('#search-results tr', { has: page.locator(`a[href="/admin/users/${g.userId}"]`) }).textContent()).toContain('device id');
    await Promise.all([page.waitForURL(`${base()}/admin/users/${g.userId}`), page.click(`#search-results a[href="/admin/users/${g.userId}"]`)]);
    const availableBefore = Number(await page.textContent('#available'));

    // Refund 5 credits with a reason.
    await page.selectOption('#credits-form select[name=kind]', 'grant');
    await page.fill('#credits-form input[name=amount]', '5');
    await page.fill('#credits-form input[name=reason]', 'Refund: video came out blank (ticket 4711)');
    await Promise.all([page.waitForURL(/done=/), page.click('#credits-form button')]);
    expect(await page.textContent('#flash')).toContain('Gave 5 credits');
    expect(Number(await page.textContent('#available'))).toBe(availableBefore + 5);
    const ledgerRow = page.locator('#ledger tr[data-kind=admin_grant]');
    await expect(ledgerRow.count()).resolves.toBe(1);
    expect(await ledgerRow.textContent()).toContain('Refund: video came out blank (ticket 4711)');
    const auditRow = page.locator('#user-actions tr[data-action=grant_credits]');
    expect(await auditRow.textContent()).toContain('Refund: video came out blank (ticket 4711)');
    expect(await auditRow.textContent()).toContain(admin.email);
    // The app sees the credits.
    const credits = await t().json(t().get('/functions/v1/get-user-credits', { token: g.accessToken }));
    expect(credits.credits_remaining).toBe(availableBefore + 5);

    // A clawback of more than is available takes what is available: its audit row shows both.
    await page.selectOption('#credits-form select[name=kind]', 'clawback');
    await page.fill('#credits-form input[name=amount]', '500');
    await page.fill('#credits-form input[name=reason]', 'Chargeback (ticket 4712)');
    await Promise.all([page.waitForURL(/done=/), page.click('#credits-form button')]);
    expect(await page.textContent('#flash')).toContain(`Clawed back ${availableBefore + 5} of 500 credits asked`);
    expect(Number(await page.textContent('#available'))).toBe(0);
    const clawbackRow = page.locator('#user-actions tr[data-action=clawback_credits]');
    expect(await clawbackRow.locator('td.num').allTextContents()).toEqual(['500', String(availableBefore + 5)]);
    mkdirSync(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SCREENSHOTS, 'admin-user.png'), fullPage: true });

    // The audit log page has the row too.
    await page.click('header a[href="/admin/audit"]');
    expect(await page.locator('#audit tr[data-action=grant_credits]').first().textContent()).toContain('ticket 4711');

    // Make Pika the app's model, with a reason: the one it replaces stops being active.
    const before = await getModels();
    expect(before.ids).toContain('pika-2.2-text-to-video');
    await page.click('header a[href="/admin/models"]');
    const pika = page.locator('#model-pika-2\\.2-text-to-video');
    await pika.locator('select[name=is_active]').selectOption('true');
    await pika.locator('input[name=reason]').fill('Veo outage (incident 88)');
    await Promise.all([page.waitForURL(/done=/), pika.locator('button').click()]);
    expect(await page.textContent('#app-model')).toContain('pika-2.2-text-to-video');
    expect(await page.locator('#models section[data-active=true]').count()).toBe(1);

    // Disabling it would leave the app no model: the console warns and changes nothing until confirmed.
    await pika.locator('select[name=is_available]').selectOption('false');
    await pika.locator('input[name=reason]').fill('Pika down too (incident 89)');
    const [warned] = await Promise.all([page.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith('/admin/models/pika-2.2-text-to-video')), pika.locator('button').click()]);
    expect(warned.status()).toBe(409);
    expect(await page.textContent('#confirm-empty')).toContain('ERR_4028');
    expect((await getModels()).ids).toContain('pika-2.2-text-to-video');
    await page.screenshot({ path: path.join(SCREENSHOTS, 'admin-models.png') });
    await Promise.all([page.waitForURL(/done=/), page.click('#confirm-empty button')]);
    expect(await page.textContent('#app-model')).toContain('shows no model');
    const after = await getModels();
    expect(after.ids).not.toContain('pika-2.2-text-to-video');
    expect(after.etag).not.toBe(before.etag);
    await page.click('header a[href="/admin/audit"]');
    const modelRows = await page.locator('#audit tr[data-action=update_model]').allTextContents();
    expect(modelRows.filter((r) => r.includes('Veo outage (incident 88)'))).toHaveLength(2);
    expect(modelRows.find((r) => r.includes('incident 89'))).toContain('is_available true → false');

    await page.click('header a[href="/admin"]');
    await page.waitForSelector('#jobs-by-status');
    expect(Number(await page.textContent('#credits-refunded'))).toBe(5);
    // The charts (SVG drawn by the server) show this file's two jobs, the refund and the clawback.
    expect(await chartTotal(page, 'chart-started', 'simulator')).toBe(2);
    expect(await chartTotal(page, 'chart-completed', 'simulator')).toBe(1);
    expect(await chartTotal(page, 'chart-failed', 'simulator')).toBe(1);
    expect(await chartTotal(page, 'chart-credits', 'refunded by support')).toBe(5);
    expect(await chartTotal(page, 'chart-credits', 'clawed back')).toBe(availableBefore + 5);
    expect(await page.locator('#chart-time-to-video svg circle').count()).toBeGreaterThanOrEqual(2);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'admin-dashboard.png'), fullPage: true });
    await Promise.all([page.waitForURL(/range=7d/), page.click('#charts a[href="/admin?range=7d"]')]);
    expect(await page.getAttribute('#charts', 'data-range')).toBe('7d');
    expect(await chartTotal(page, 'chart-started', 'simulator')).toBe(2);

    // Signing out ends the session: the console sends the browser back to the sign-in page.
    await Promise.all([page.waitForURL(`${base()}/admin/login`), page.click('header form button')]);
    await page.goto(`${base()}/admin`);
    expect(new URL(page.url()).pathname).toBe('/admin/login');
  }, 120_000);
  it('on a 390 px phone: no page runs off the screen; a support agent finds a user by email and refunds them', async () => {
    const g: Guest = await t().createGuest();
    await t().db.query("UPDATE users SET email = 'phone.user@example.com' WHERE id = $1", [g.userId]);
    const admin = await createAdmin(t(), { email: 'phone-support@rendio.example', signIn: false });
    const page: Page = await browser!.newPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    await signIn(page, admin.email);
    expect(await pageWidth(page)).toBeLessThanOrEqual(390);

    await page.click('header a[href="/admin/users"]');
    await page.fill('#search-form input[name=q]', 'Phone.User@');
    await Promise.all([page.waitForURL(/\/admin\/users\?q=/), page.click('#search-form button')]);
    expect(await pageWidth(page)).toBeLessThanOrEqual(390);
    await Promise.all([page.waitForURL(`${base()}/admin/users/${g.userId}`), page.click(`#search-results a[href="/admin/users/${g.userId}"]`)]);
    expect(await pageWidth(page)).toBeLessThanOrEqual(390);

    const availableBefore = Number(await page.textContent('#available'));
    await page.fill('#credits-form input[name=amount]', '3');
    await page.fill('#credits-form input[name=reason]', 'Refund from the phone (ticket 5150)');
    // The form's controls are all on the screen: the agent can reach each one.
    for (const control of await page.locator('#credits-form select, #credits-form input:visible, #credits-form button').all()) {
      const box = (await control.boundingBox())!;
      expect(box.x + box.width).toBeLessThanOrEqual(390);
    }
    await Promise.all([page.waitForURL(/done=/), page.tap('#credits-form button')]);
    expect(await page.textContent('#flash')).toContain('Gave 3 credits');
    expect(Number(await page.textContent('#available'))).toBe(availableBefore + 3);
    expect(await pageWidth(page)).toBeLessThanOrEqual(390);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'admin-phone-user.png') });

    for (const link of ['/admin/models', '/admin/failures', '/admin/audit', '/admin']) {
      await page.goto(`${base()}${link}`);
      expect(await pageWidth(page), link).toBeLessThanOrEqual(390);
    }
    expect(await page.locator('#charts figure.chart').count()).toBe(7);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'admin-phone-dashboard.png'), fullPage: true });
  }, 60_000);
});
