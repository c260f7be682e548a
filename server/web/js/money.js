// Money as the API sends it: integers of micro-USD (1 USD = 1,000,000), shown as exact decimals.
// No float ever carries an amount: the digits are cut from the integer, as billing/money.py does.

const MICRO = 1_000_000;
const group = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

/** 1_750_001 -> "$1.750001"; 12_500_000 -> "$12.50"; -120_000 -> "-$0.12" (2 to 6 decimals, exact). */
export function usd(micro) {
  const n = Number(micro) || 0;
  const sign = n < 0 ? "-" : "";
  const abs = Math.abs(n);
  const whole = Math.floor(abs / MICRO);
  const fraction = String(abs % MICRO).padStart(6, "0").replace(/0+$/, "").padEnd(2, "0");
  return `${sign}$${group.format(whole)}.${fraction}`;
}
