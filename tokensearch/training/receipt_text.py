"""What receipts, invoices and forms say: stores, addresses, registration and phone numbers, items,
amounts with currencies, dates and times in the many ways tills print them, totals and footers.

One :class:`ReceiptText` per generator, seeded; :meth:`ReceiptText.new_document` fixes the habits of
one document (currency, decimal mark, date and time format), as a real till keeps them. Words come
from :class:`.textgen.TextSource` and the lists below (written for this module, not taken from any
receipt collection).
"""

from __future__ import annotations

import datetime as dt
import random

from .textgen import FIRST_NAMES, LAST_NAMES, TextSource

GOODS = (
    "BATTERY ALKALINE TISSUE BOX PAPER TOWEL DETERGENT SHAMPOO SOAP TOOTHPASTE MILK FULL CREAM "
    "BREAD WHOLEMEAL RICE FRAGRANT SUGAR FLOUR COOKING OIL EGGS GRADE CHICKEN BREAST BEEF MINCE FISH "
    "BALL NOODLE INSTANT CUP COFFEE 3IN1 TEA BAGS MINERAL WATER SOFT DRINK CAN JUICE ORANGE APPLE "
    "BANANA ONION GARLIC POTATO TOMATO CABBAGE CHILI SAUCE SOY OYSTER KETCHUP MAYONNAISE BUTTER "
    "CHEESE SLICE YOGURT ICE CREAM CHOCOLATE BISCUIT CRACKER CHIPS CANDY GUM PEN BALLPOINT PENCIL "
    "ERASER RULER NOTEBOOK A4 PAPER FILE FOLDER STAPLER GLUE TAPE SCISSORS ENVELOPE MARKER "
    "HIGHLIGHTER SCREW NAIL BOLT NUT WASHER HAMMER DRILL BIT PAINT BRUSH ROLLER SANDPAPER PIPE "
    "ELBOW SOCKET PLUG CABLE EXTENSION BULB LED LAMP SWITCH FUSE HOSE VALVE CEMENT SAND TILE "
    "NASI LEMAK GORENG AYAM MEE KUEH TEH TARIK KOPI ROTI CANAI BURGER FRIES PIZZA PASTA SALAD SOUP "
    "SANDWICH WRAP LATTE CAPPUCCINO MOCHA ESPRESSO AMERICANO MUFFIN CAKE SLICE DONUT CROISSANT "
    "FILTER CARTRIDGE TONER INK REFILL CHARGER USB CABLE EARPHONE CASE SCREEN PROTECTOR "
    "SERVICE CHARGE DELIVERY FEE LABOUR INSTALLATION PARKING TOLL PETROL DIESEL RON95 RON97"
).split()
SIZES = (
    "500G 1KG 2KG 5KG 250ML 1L 1.5L 2L 12S 24S 4PCS 10PCS 2X250ML 3PLY 6X1L 100G 400G A4 M L XL "
    "10MM 25MM 1/2IN 3/4IN 20W 60W 1M 5M"
).split()
STORE_KINDS = (
    "TRADING ENTERPRISE HARDWARE MART SUPERMARKET RESTAURANT CAFE BOOKSTORE PHARMACY STATIONERY "
    "BAKERY AUTO PARTS ELECTRICAL MINI MARKET HYPERMARKET KITCHEN BISTRO FOOD COURT OPTICAL "
    "TEXTILE FURNITURE PETROL STATION GROCER STORE DEPOT"
).split()
COMPANY_SUFFIXES = (
    "SDN BHD",
    "SDN. BHD.",
    "LTD",
    "LIMITED",
    "INC",
    "INC.",
    "LLC",
    "PTE LTD",
    "GMBH",
    "S.A.",
    "CO.",
    "& CO",
    "PLC",
    "",
)
STREETS = ("JALAN", "JLN", "LORONG", "PERSIARAN", "STREET", "ROAD", "AVENUE", "LANE", "DRIVE", "BOULEVARD")
CITIES = (
    "KUALA LUMPUR",
    "PETALING JAYA",
    "SHAH ALAM",
    "JOHOR BAHRU",
    "IPOH",
    "PENANG",
    "KLANG",
    "SINGAPORE",
    "LONDON",
    "MANCHESTER",
    "SPRINGFIELD",
    "RIVERSIDE",
    "FAIRVIEW",
    "MILTON",
    "GEORGETOWN",
    "FRANKLIN",
    "BERLIN",
    "HAMBURG",
    "LYON",
    "SYDNEY",
    "AUCKLAND",
    "TORONTO",
)
STATES = ("SELANGOR", "JOHOR", "PERAK", "KEDAH", "W.P. KUALA LUMPUR", "CA", "NY", "TX", "ON", "NSW", "")
TITLES = (
    "TAX INVOICE",
    "RECEIPT",
    "CASH SALE",
    "CASH BILL",
    "SALES RECEIPT",
    "SIMPLIFIED TAX INVOICE",
    "OFFICIAL RECEIPT",
    "INVOICE",
    "CASH RECEIPT",
    "BILL",
    "ORDER",
    "CUSTOMER COPY",
)
A4_TITLES = (
    "INVOICE",
    "TAX INVOICE",
    "QUOTATION",
    "DELIVERY ORDER",
    "PURCHASE ORDER",
    "CREDIT NOTE",
    "PROFORMA INVOICE",
    "STATEMENT OF ACCOUNT",
)
FORM_TITLES = (
    "APPLICATION FORM",
    "REGISTRATION FORM",
    "CLAIM FORM",
    "ORDER FORM",
    "ENROLMENT FORM",
    "CHANGE OF ADDRESS",
    "EXPENSE CLAIM",
    "MEMBERSHIP FORM",
    "REQUEST FOR QUOTATION",
)
FORM_LABELS = (
    "NAME",
    "FULL NAME",
    "SURNAME",
    "FIRST NAME",
    "DATE OF BIRTH",
    "DATE",
    "I/C NO.",
    "PASSPORT NO.",
    "ADDRESS",
    "POSTCODE",
    "CITY",
    "STATE",
    "COUNTRY",
    "TEL NO.",
    "MOBILE",
    "E-MAIL",
    "OCCUPATION",
    "EMPLOYER",
    "ACCOUNT NO.",
    "AMOUNT",
    "REFERENCE NO.",
    "SIGNATURE",
    "POLICY NO.",
    "VEHICLE NO.",
    "INVOICE NO.",
    "NATIONALITY",
    "GENDER",
    "DEPARTMENT",
    "STAFF ID",
    "TOTAL",
)
FOOTERS = (
    "THANK YOU",
    "THANK YOU & PLEASE COME AGAIN",
    "THANK YOU FOR SHOPPING WITH US",
    "GOODS SOLD ARE NOT RETURNABLE",
    "GOODS SOLD ARE NOT RETURNABLE & REFUNDABLE",
    "PLEASE KEEP YOUR RECEIPT",
    "EXCHANGE WITHIN 7 DAYS WITH RECEIPT",
    "*** CUSTOMER COPY ***",
    "** MERCHANT COPY **",
    "HAVE A NICE DAY",
    "SEE YOU AGAIN",
    "PRICES INCLUSIVE OF GST",
    "SERVICE TAX 6% INCLUDED",
    "THIS IS A COMPUTER GENERATED RECEIPT",
    "NO SIGNATURE REQUIRED",
    "WIFI PASSWORD: {code}",
    "VISIT US AT {url}",
    "POINTS EARNED: {n}",
    "MEMBER BALANCE: {n}",
)
MONTHS3 = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DATE_FORMATS = (
    "%d/%m/%Y",
    "%d/%m/%Y",
    "%Y-%m-%d",
    "%d-%b-%y",
    "%d-%m-%Y",
    "%d.%m.%Y",
    "%m/%d/%y",
    "%d/%m/%y",
    "%d %b %Y",
    "%b %d, %Y",
    "%Y/%m/%d",
    "%d%b%Y",
    "%d-%b-%Y",
    "%m/%d/%Y",
)
TIME_FORMATS = ("%I:%M:%S %p", "%H:%M", "%H:%M:%S", "%I:%M %p", "%I:%M%p", "%H%M", "%I.%M %p")
CURRENCIES = (
    ("RM", ""),
    ("RM ", ""),
    ("$", ""),
    ("S$", ""),
    ("USD ", ""),
    ("\u20ac", ""),
    ("\u00a3", ""),
    ("", ""),
    ("", " EUR"),
    ("", " \u20ac"),
    ("EUR ", ""),
    ("Rp ", ""),
)
ONES = (
    "ZERO ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE TEN ELEVEN TWELVE THIRTEEN FOURTEEN FIFTEEN "
    "SIXTEEN SEVENTEEN EIGHTEEN NINETEEN"
).split()
TENS = ("", "", "TWENTY", "THIRTY", "FORTY", "FIFTY", "SIXTY", "SEVENTY", "EIGHTY", "NINETY")


def number_words(n: int) -> str:
    """English words of 0 <= n < 10**9 ("ONE THOUSAND TWO HUNDRED FIFTY")."""
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else f" {ONES[n % 10]}")
    for div, name in ((10**6, "MILLION"), (1000, "THOUSAND"), (100, "HUNDRED")):
        if n >= div:
            rest = n % div
            return f"{number_words(n // div)} {name}" + ("" if rest == 0 else f" {number_words(rest)}")
    raise AssertionError(n)


class ReceiptText:
    """Seeded text of commercial documents."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.src = TextSource(rng)
        self.new_document()

    def new_document(self) -> None:
        """Fix one document's habits: currency, decimal comma, date/time formats, upper-case dates."""
        r = self.rng
        self.cur_prefix, self.cur_suffix = r.choice(CURRENCIES)
        self.decimal_comma = self.cur_suffix != "" and r.random() < 0.7
        self.thousands = r.random() < 0.7
        self.date_format = r.choice(DATE_FORMATS)
        self.time_format = r.choice(TIME_FORMATS)
        self.upper_dates = r.random() < 0.5
        day = dt.date(2005, 1, 1) + dt.timedelta(days=r.randrange(365 * 25))
        self.when = dt.datetime.combine(day, dt.time(r.randint(7, 23), r.randrange(60), r.randrange(60)))

    # --- amounts ------------------------------------------------------------------------------------
    def currency(self) -> str:
        return self.cur_prefix

    def money(self, cents: int, currency: bool = False) -> str:
        """``cents`` as the document writes amounts: 1,250.00 / 1250.00 / 12,50 / -0.02, with its currency
        when asked."""
        sign = "-" if cents < 0 else ""
        s = f"{abs(cents) / 100:,.2f}" if self.thousands else f"{abs(cents) / 100:.2f}"
        if self.decimal_comma:
            s = s.replace(",", " ").replace(".", ",").replace(" ", ".")
        s = sign + s
        return f"{self.cur_prefix}{s}{self.cur_suffix}" if currency else s

    # --- dates and times ----------------------------------------------------------------------------
    def date(self) -> str:
        s = self.when.strftime(self.date_format)
        return s.upper() if self.upper_dates else s

    def time(self) -> str:
        s = self.when.strftime(self.time_format)
        return s[1:] if s.startswith("0") and "%I" in self.time_format and self.rng.random() < 0.6 else s

    # --- parties ------------------------------------------------------------------------------------
    def store(self) -> str:
        r, src = self.rng, self.src
        k = r.random()
        if k < 0.4:
            name = f"{src.word().upper()} {r.choice(STORE_KINDS)}"
        elif k < 0.7:
            name = f"{r.choice(LAST_NAMES).upper()} {r.choice(STORE_KINDS)}"
        else:
            name = " ".join(src.word().upper() for _ in range(r.randint(1, 3)))
        suffix = r.choice(COMPANY_SUFFIXES)
        return f"{name} {suffix}".strip()

    def company_reg(self) -> str:
        r = self.rng
        n = r.randint(10000, 1299999)
        return r.choice(
            [
                f"({n}-{r.choice('ABDHKMPTUVWX')})",
                f"CO. REG. NO: {n}-{r.choice('ADKMPTVW')}",
                f"({r.randint(2000, 2023)}0{n:07d})",
                f"ROC NO. {n}",
                f"Company No. {n:08d}",
            ]
        )

    def address(self) -> list[str]:
        r, src = self.rng, self.src
        word, street = src.word().upper(), r.choice(STREETS)
        first = r.choice(
            [
                f"NO. {r.randint(1, 250)}, {street} {word}",
                f"LOT {r.randint(1, 9999)}, {street} {word} {r.randint(1, 30)}/{r.randint(1, 9)}",
                f"{r.randint(1, 9999)} {word.capitalize()} {street.capitalize()}",
                f"{r.randint(1, 99)}-{r.randint(1, 20)}, {r.choice(['TAMAN', 'BANDAR', 'PLAZA'])} {word}",
                f"UNIT {r.randint(1, 40)}{r.choice('ABCD')}, {word} {r.choice(['MALL', 'CENTRE', 'PARK'])}",
            ]
        )
        city = f"{r.randint(10000, 99999)} {r.choice(CITIES)}"
        state = r.choice(STATES)
        lines = [first, f"{city}, {state}".rstrip(", ") if r.random() < 0.6 else city]
        if state and r.random() < 0.4:
            lines.append(state)
        return lines

    def phone(self) -> str:
        r = self.rng
        return r.choice(
            [
                f"0{r.randint(3, 9)}-{r.randint(1000, 9999)} {r.randint(1000, 9999)}",
                f"0{r.randint(10, 19)}-{r.randint(100, 999)} {r.randint(1000, 9999)}",
                f"+60 {r.randint(3, 19)}-{r.randint(1000, 9999)} {r.randint(1000, 9999)}",
                f"({r.randint(200, 999)}) {r.randint(200, 999)}-{r.randint(1000, 9999)}",
                f"+44 {r.randint(20, 99)} {r.randint(1000, 9999)} {r.randint(1000, 9999)}",
                f"{r.randint(6000, 9999)} {r.randint(1000, 9999)}",
            ]
        )

    def phone_line(self) -> str:
        r = self.rng
        line = f"{r.choice(['TEL', 'TEL:', 'Tel:', 'PHONE', 'PH', 'T:'])} {self.phone()}"
        if r.random() < 0.35:
            line += f" {r.choice(['FAX', 'FAX:', 'F:'])} {self.phone()}"
        return line

    def tax_reg(self) -> str:
        r = self.rng
        n = r.randint(0, 999999999999)
        return r.choice(
            [
                f"GST REG NO: {n:012d}",
                f"GST ID : {n:012d}",
                f"GST ID NO: {n % 10**11:011d}",
                f"SST ID: W{r.randint(10, 99)}-{r.randint(1000, 9999)}-{r.randint(10000000, 99999999)}",
                f"VAT NO: GB {r.randint(100, 999)} {r.randint(1000, 9999)} {r.randint(10, 99)}",
                f"ABN {r.randint(10, 99)} {r.randint(100, 999)} {r.randint(100, 999)} {r.randint(100, 999)}",
                f"TIN: {r.randint(10, 99)}-{r.randint(1000000, 9999999)}",
                f"USt-IdNr. DE{r.randint(100000000, 999999999)}",
            ]
        )

    def title(self, a4: bool = False, form: bool = False) -> str:
        return self.rng.choice(FORM_TITLES if form else A4_TITLES if a4 else TITLES)

    def doc_number(self) -> str:
        r = self.rng
        prefix, digits = r.choice(["CS", "INV", "OR", "T", "BL", "SI", "R"]), r.choice([5, 6, 8])
        return r.choice(
            [
                f"{prefix}{r.randint(0, 10**digits - 1):0{digits}d}",
                f"{r.randint(100, 999)}-{r.randint(100000, 999999)}",
                f"#{r.randint(1000, 999999)}",
                f"{r.choice(['A', 'B', 'POS'])}{r.randint(1, 9)}-{r.randint(1000, 99999)}",
                str(r.randint(10000, 9999999)),
            ]
        )

    def meta_lines(self, date: str, time: str) -> list[tuple[str, str]]:
        """(label, value) of the document number, date, time, then cashier, counter, table, member."""
        r = self.rng
        number = r.choice(["INVOICE NO", "INV NO", "RECEIPT NO", "BILL NO", "RECEIPT #", "DOC NO", "TRANS NO", "NO"])
        return [
            (number, self.doc_number()),
            (r.choice(["DATE", "DATE", "Date", "DT"]), date),
            (r.choice(["TIME", "Time"]), time),
            (r.choice(["CASHIER", "SALESPERSON", "SERVED BY", "OPERATOR", "STAFF"]), r.choice(FIRST_NAMES).upper()),
            (r.choice(["COUNTER", "TERMINAL", "POS", "REG"]), f"{r.randint(1, 12):02d}"),
            (r.choice(["TABLE", "TABLE NO"]), str(r.randint(1, 60))),
            (r.choice(["MEMBER", "CARD NO", "CUSTOMER"]), str(r.randint(10**7, 10**10))),
        ]

    # --- items and totals ---------------------------------------------------------------------------
    def item(self, mixed_case: bool = False) -> tuple[str, int, int]:
        """(name, quantity, unit price in cents): upper-case goods, sizes, sometimes a brand word."""
        r = self.rng
        words = [r.choice(GOODS) for _ in range(r.randint(1, 3))]
        if r.random() < 0.35:
            words.insert(0, self.src.word().upper())
        if r.random() < 0.5:
            words.append(r.choice(SIZES))
        name = " ".join(words)
        if mixed_case:
            name = name.title()
        qty = r.choice([1, 1, 1, 1, 2, 2, 3, 4, 5, 6, 10, 12])
        unit = r.choice([r.randint(10, 999), r.randint(100, 9999), r.randint(1000, 99999), r.randint(5, 40) * 50])
        return name, qty, unit

    def barcode(self) -> str:
        r = self.rng
        return "".join(str(r.randrange(10)) for _ in range(r.choice([8, 12, 13, 13])))

    def totals(self, total: int, cur: str, till: bool = True) -> list[tuple[str, str, bool]]:
        """(label, amount, emphasised) lines: subtotal, tax, rounding, total, cash, change, counts."""
        r = self.rng
        rate = r.choice([6, 6, 10, 0, 20, 7, 8, 19])
        tax = round(total * rate / 100)
        taxed = r.random() < 0.5
        out: list[tuple[str, str, bool]] = []
        if r.random() < 0.8:
            label = r.choice(["SUBTOTAL", "SUB TOTAL", "Sub-Total", "TOTAL EXCL. GST", "NET"])
            out.append((label, self.money(total), False))
        if rate:
            out.append(
                (
                    r.choice(
                        [
                            f"GST {rate}%",
                            f"GST @{rate}%",
                            f"SST {rate}%",
                            f"TAX {rate}%",
                            f"VAT {rate}%",
                            f"SERVICE TAX ({rate}%)",
                        ]
                    ),
                    self.money(tax),
                    False,
                )
            )
        grand = total + (tax if taxed else 0)
        rounding = -(grand % 5) if r.random() < 0.4 else 0
        if rounding:
            label = r.choice(["ROUNDING ADJ", "ROUNDING", "Rounding Adjustment", "RND ADJ"])
            out.append((label, self.money(rounding), False))
        grand += rounding
        label = r.choice(
            [
                "TOTAL",
                "TOTAL",
                "GRAND TOTAL",
                "TOTAL AMOUNT",
                "NETT TOTAL",
                f"TOTAL {cur.strip()}".strip(),
                "TOTAL (INCL GST)",
                "AMOUNT DUE",
                "TOTAL SALES",
            ]
        )
        out.append((label, self.money(grand, currency=r.random() < 0.6), True))
        if till:
            pay = r.choice(["CASH", "CASH", "VISA", "MASTERCARD", "DEBIT CARD", "E-WALLET", "CREDIT CARD"])
            if pay == "CASH":
                tendered = grand + r.choice([0, 0, r.randint(1, 2000), (-grand) % 1000, (-grand) % 5000])
                out += [
                    (r.choice(["CASH", "TENDERED", "CASH RECEIVED", "PAID"]), self.money(tendered), False),
                    (r.choice(["CHANGE", "CHANGE DUE", "BALANCE"]), self.money(tendered - grand), False),
                ]
            else:
                card = f"{pay} {r.choice(['****', 'XXXX', 'xxxx'])}{r.randint(1000, 9999)}"
                out.append((card, self.money(grand), False))
            if r.random() < 0.4:
                out.append((r.choice(["TOTAL QTY", "ITEM COUNT", "NO. OF ITEMS", "QTY"]), str(r.randint(1, 30)), False))
        return out

    def tax_summary(self, total: int, cur: str) -> list[tuple[str, tuple[str, ...]]]:
        r = self.rng
        rate = r.choice([6, 0, 10])
        amount = r.choice(["AMOUNT", f"AMT({cur.strip() or 'RM'})"])
        head = (r.choice(["GST SUMMARY", "TAX SUMMARY", "SUMMARY"]), (amount, "TAX"))
        base = total - (total % 100 if r.random() < 0.5 else 0)
        std = (self.money(base), self.money(round(base * rate / 100)))
        return [
            head,
            (f"{r.choice(['SR', 'S', 'STD'])} @ {rate}%", std),
            (f"{r.choice(['ZR', 'Z', 'EX'])} @ 0%", (self.money(total - base), self.money(0))),
        ]

    def footer(self, date: str, time: str) -> list[str]:
        r = self.rng
        lines = [
            r.choice(FOOTERS).format(
                code=self.src.code(), url=self.src.url().removeprefix("https://"), n=r.randint(1, 9999)
            )
            for _ in range(r.randint(1, 3))
        ]
        if r.random() < 0.3:
            lines.append(f"{date} {time} {r.choice(['#', 'T', 'POS'])}{r.randint(1, 99):02d} {self.doc_number()}")
        return lines

    # --- A4 documents -------------------------------------------------------------------------------
    def invoice_fields(self) -> list[tuple[str, str]]:
        r = self.rng
        fields = [
            (r.choice(["INVOICE NO", "Invoice No.", "NO."]), self.doc_number()),
            (r.choice(["DATE", "Date"]), self.date()),
            (r.choice(["TERMS", "Terms"]), r.choice(["C.O.D.", "30 DAYS", "NET 30", "CASH", "14 DAYS"])),
            (r.choice(["DUE DATE", "Due Date"]), (self.when + dt.timedelta(days=30)).strftime(self.date_format)),
            (r.choice(["P.O. NO", "YOUR REF", "D.O. NO"]), self.src.code()),
            (
                r.choice(["SALESPERSON", "ACCOUNT", "A/C NO"]),
                r.choice([r.choice(FIRST_NAMES).upper(), str(r.randint(1000, 999999))]),
            ),
        ]
        return fields[: r.randint(3, len(fields))]

    def amount_in_words(self, cents: int) -> str:
        r = self.rng
        words = number_words(cents // 100)
        cur = r.choice(["RINGGIT MALAYSIA", "DOLLARS", "EURO", "POUNDS", ""])
        cts = f" AND CENTS {number_words(cents % 100)}" if cents % 100 else ""
        return f"{r.choice(['', 'TOTAL: ', 'AMOUNT IN WORDS: '])}{cur} {words}{cts} ONLY".replace("  ", " ").strip()

    def a4_footer(self) -> list[str]:
        r = self.rng
        account = f"{r.randint(1000, 9999)}-{r.randint(1000, 9999)}-{r.randint(1000, 9999)}"
        lines = [
            f"{r.choice(['Bank', 'BANK', 'Payable to'])}: {self.src.word().upper()} BANK "
            f"{r.choice(['A/C', 'ACC NO', 'IBAN'])} {account}",
            r.choice(
                [
                    "E. & O. E.",
                    "This is a computer generated invoice. No signature is required.",
                    "Goods sold are not returnable.",
                    "Authorised Signature ____________________",
                    "Received by: ______________  Date: __________",
                ]
            ),
        ]
        return lines[: r.randint(1, 2)]

    def form_label(self) -> str:
        r = self.rng
        label = r.choice(FORM_LABELS)
        return label if r.random() < 0.6 else label.title() + r.choice([":", "", " *"])

    def id_number(self) -> str:
        r = self.rng
        return f"{r.randint(500101, 991231)}{r.randint(10, 14)}{r.randint(1000, 9999)}"

    def form_value(self, label: str) -> str:
        r, src = self.rng, self.src
        key = label.upper()
        if "DATE" in key:
            return self.date()
        if "NAME" in key:
            return f"{r.choice(FIRST_NAMES)} {r.choice(LAST_NAMES)}".upper() if r.random() < 0.6 else src.name()
        if "MAIL" in key:
            return src.email()
        if "TEL" in key or "MOBILE" in key:
            return self.phone()
        if "AMOUNT" in key or "TOTAL" in key:
            return self.money(r.randint(100, 10**7), currency=True)
        if "ADDRESS" in key:
            return self.address()[0]
        if "NO" in key or "ID" in key:
            return r.choice([src.code(), self.id_number(), self.doc_number()])
        return src.short().upper() if r.random() < 0.5 else src.short()
