"""Explanations of served scores (SHAP, LIME), factor families and factor effectiveness."""
