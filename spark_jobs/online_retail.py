"""The UCI Online Retail log (`interest etl --format online-retail`): one CSV (or gzipped CSV) of invoice lines that
gives the events, the catalog and each customer's country.

Columns: InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice, CustomerID, Country. Rules (counts of
the public file in docs/online-retail.md):
  * events: every line with a customer id, not cancelled and of a product, is a `buy` of its stock code at the
    invoice time; the invoice number is its session id, so the lines of one invoice form one basket
    (data.baskets, on by default for this format); equal times keep the file's order.
  * set aside, each under its own reason, quarantined and counted, never held against
    data.max_quarantine_fraction (validate.SET_ASIDE): a line without a customer id (`no_customer_id`: an
    anonymous sale), a cancellation (`cancellation`: an invoice number starting with C, never a purchase), a line
    whose stock code is not a product (`non_product_code`: a code that does not start with five digits: postage
    POST, manual M, discounts D, carriage C2, bank charges, fees).
  * time: InvoiceDate is the shop's local time (Europe/London) without a zone, `YYYY-MM-DD HH:MM:SS` (or UCI's
    spreadsheet export `M/D/YYYY H:MM`); it is read in that zone and stored as UTC. A date that does not parse is
    handed on as it is: validate quarantines it (unparseable_ts).
  * a negative quantity outside a cancellation, a price that is not a number: validate's usual bad rows.
  * catalog: one row per stock code over its product lines (customer or not, cancellations aside): title = its
    most frequent non-empty description (ties: the later line), price = the median unit price of its lines with a
    positive price (a code's price varies with discounts and pack sizes; the median is its usual price), no
    category (interest/categories.py derives categories from the titles; `--items` then brings them).
  * users: a customer's region is the country of most of their lines (ties: the later line).
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

NAME = "online-retail"
COLUMNS = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]
SHOP_TIME_ZONE = "Europe/London"
NO_CUSTOMER, CANCELLATION, NON_PRODUCT = "no_customer_id", "cancellation", "non_product_code"
SET_ASIDE = (NO_CUSTOMER, CANCELLATION, NON_PRODUCT)
DATE_PATTERNS = ("yyyy-MM-dd HH:mm:ss", "M/d/yyyy H:mm")


def _blank(col: Column) -> Column:
    return col.isNull() | (F.trim(col) == "")


def customer_id(col: Column) -> Column:
    """`17850.0` (the file's float) -> `17850`; other ids as they are."""
    return F.regexp_replace(F.trim(col), r"\.0+$", "")


def is_product(stock_code: Column) -> Column:
    return F.trim(stock_code).rlike(r"^[0-9]{5}")


def utc_seconds(local: Column) -> Column:
    """The shop's local time -> unix seconds (UTC) as text, or the text as it is when it does not parse."""
    parsed = F.coalesce(*[F.try_to_timestamp(F.trim(local), F.lit(p)) for p in DATE_PATTERNS])
    utc = F.unix_timestamp(F.to_utc_timestamp(parsed, SHOP_TIME_ZONE))  # the session's time zone is UTC
    return F.when(parsed.isNotNull(), utc.cast("string")).otherwise(local)


def set_aside_reason(lines: DataFrame) -> Column:
    """The reason a readable line is set aside (SET_ASIDE), null for a purchase line."""
    return (F.when(_blank(F.col("CustomerID")), F.lit(NO_CUSTOMER))
            .when(F.upper(F.trim(F.col("InvoiceNo"))).startswith("C"), F.lit(CANCELLATION))
            .when(~is_product(F.col("StockCode")), F.lit(NON_PRODUCT)))


def events(lines: DataFrame) -> dict[str, Column]:
    """The raw frame's fields (ingest.RAW_FIELDS) of the parsed lines (ingest.read_invoice_lines), and the
    parse_error column with the set-aside reasons added."""
    unread = F.col("parse_error").isNotNull()
    return {"parse_error": F.when(unread, F.col("parse_error")).otherwise(set_aside_reason(lines)),
            "user_id": customer_id(F.col("CustomerID")), "item_id": F.trim(F.col("StockCode")),
            "event_type": F.when(~unread, F.lit("buy")), "ts": utc_seconds(F.col("InvoiceDate")),
            "session_id": F.trim(F.col("InvoiceNo")), "quantity": F.col("Quantity"), "price": F.col("UnitPrice")}


def _product_lines(lines: DataFrame) -> DataFrame:
    return lines.where(F.col("parse_error").isNull() & is_product(F.col("StockCode"))
                       & ~F.upper(F.trim(F.col("InvoiceNo"))).startswith("C"))


def catalog(lines: DataFrame) -> DataFrame:
    """ingest.read_items' columns (catalog_file, catalog_row, item_id, category, brand, price, title, description),
    one row per stock code (module docstring: the title and price rules)."""
    products = _product_lines(lines).select(
        F.trim("StockCode").alias("item_id"), F.trim("Description").alias("text"),
        F.trim("UnitPrice").try_cast("double").alias("unit_price"), "src_file", "src_row")
    texts = (products.where(~_blank(F.col("text"))).groupBy("item_id", "text")
             .agg(F.count(F.lit(1)).alias("n"), F.max(F.struct("src_file", "src_row")).alias("at")))
    best = Window.partitionBy("item_id").orderBy(F.col("n").desc(), F.col("at").desc())
    title = texts.withColumn("_r", F.row_number().over(best)).where(F.col("_r") == 1).select("item_id", "text")
    price = products.groupBy("item_id").agg(
        F.percentile(F.when(F.col("unit_price") > 0, F.col("unit_price")), F.lit(0.5)).alias("price"))
    return price.join(title, "item_id", "left").select(
        F.lit("").alias("catalog_file"), F.lit(0).cast("long").alias("catalog_row"), "item_id",
        F.lit(None).cast("string").alias("category"), F.lit(None).cast("string").alias("brand"),
        F.col("price").cast("double"), F.col("text").alias("title"), F.lit(None).cast("string").alias("description"))


def users(lines: DataFrame) -> DataFrame:
    """users.read_users' columns (user_id raw, age, gender, occupation, region, users_file, users_row,
    users_sha256): one row per customer, region = the country of most of their lines (ties: the later line). The
    customer's raw id stays inside the ETL: users.build pseudonymizes it."""
    rows = lines.where(F.col("parse_error").isNull() & ~_blank(F.col("CustomerID")) & ~_blank(F.col("Country")))
    counts = rows.groupBy(customer_id(F.col("CustomerID")).alias("user_id"), F.trim("Country").alias("country")).agg(
        F.count(F.lit(1)).alias("n"), F.max(F.struct("src_file", "src_row")).alias("at"))
    most = Window.partitionBy("user_id").orderBy(F.col("n").desc(), F.col("at").desc())
    top = counts.withColumn("_r", F.row_number().over(most)).where(F.col("_r") == 1)
    none = F.lit(None).cast("string")
    return top.select("user_id", none.alias("age"), none.alias("gender"), none.alias("occupation"),
                      F.col("country").alias("region"), F.lit(NAME).alias("users_file"),
                      F.col("at.src_row").alias("users_row"), F.lit(None).cast("string").alias("users_sha256"))

