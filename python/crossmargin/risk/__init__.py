"""Risk beyond today's margin: liquidation prices (:mod:`.liqprice`), stress and reverse
stress (:mod:`.stress`), capital efficiency (:mod:`.efficiency`), funding payments
(:mod:`.funding`), solvency and the proof of liabilities (:mod:`.solvency`) and per-account
explanations (:mod:`.explain`). Each is reached through :class:`crossmargin.Engine`."""
