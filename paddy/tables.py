"""How paddy prints a table: whole (no wrapping, no elided rows), blanks for missing values, floats to a fixed number
of places; every command's table goes through here."""
import pandas as pd


def table_text(df: pd.DataFrame, digits: int = 4) -> str:
    with pd.option_context('display.width', 250, 'display.max_colwidth', 60, 'display.max_rows', 500):
        return df.to_string(index=False, na_rep='', float_format=lambda x: f'{x:.{digits}f}')
